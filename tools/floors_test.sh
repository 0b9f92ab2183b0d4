#!/usr/bin/env bash
# Keeps pasha's floors: each folder includes only what lies below it.
#
#   pasha/ core (all but pasha.h and default_context.*)  includes pasha/ only
#   contexts/, functors/                                   include the core, never each other, tools/ or
#                                                          the umbrella; contexts/ use the backend
#                                                          contract, never pasha/detail/ or detail::
#   tools/, benchmarks/, conformance/, tests               may include anything below them
#
# Usage: floors_test.sh [--no-detail] FILE...   (paths relative to the workspace root)
#   --no-detail: only check that the files use no pasha::detail (for a third party's context).
# Runs as a Bazel sh_test with the files as data; prints each violation and fails if there is one.
set -u
cd "${TEST_SRCDIR:-.}/${TEST_WORKSPACE:-}" 2>/dev/null || true

violations=0
violation() {
  echo "FLOOR VIOLATION: $1"
  violations=$((violations + 1))
}

# The "..." includes of a file, one per line.
includes_of() { sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$1"; }

check_includes() {
  local file=$1 allowed_pattern=$2 forbidden_pattern=$3 include
  while read -r include; do
    [[ -z "$include" ]] && continue
    if [[ -n "$allowed_pattern" && ! "$include" =~ $allowed_pattern ]]; then
      violation "$file includes \"$include\" (allowed: $allowed_pattern)"
    elif [[ -n "$forbidden_pattern" && "$include" =~ $forbidden_pattern ]]; then
      violation "$file includes \"$include\""
    fi
  done < <(includes_of "$file")
}

check_no_detail() {
  local file=$1
  if grep -n 'detail::' "$file" | grep -v '^[0-9]*:[[:space:]]*//' >/dev/null; then
    violation "$file uses pasha's internals (detail::); use the backend contract, pasha/backend.h"
  fi
}

# The README section a context author reads must not send them into pasha::detail.
check_readme() {
  local section
  section=$(sed -n '/^## Checking your own context/,/^## /p' "$1")
  [[ -z "$section" ]] && violation "$1 has no section \"Checking your own context\""
  grep -q 'detail::' <<<"$section" && violation "$1: \"Checking your own context\" mentions detail::"
}

no_detail_only=0
if [[ "${1:-}" == --no-detail ]]; then
  no_detail_only=1
  shift
fi
(($# > 0)) || { echo "usage: floors_test.sh [--no-detail] FILE..."; exit 2; }

checked=0
for file in "$@"; do
  [[ -f "$file" ]] || { violation "$file is missing"; continue; }
  checked=$((checked + 1))
  if ((no_detail_only)); then
    check_no_detail "$file"
    continue
  fi
  case "$file" in
    README.md) check_readme "$file" ;;
    *_test.cc | */testdata/* | *_test.sh) ;;  # tests stand above every floor
    pasha/pasha.h | pasha/default_context.*)
      check_includes "$file" '^(pasha|contexts)/' '^pasha/detail/' ;;
    pasha/*)
      check_includes "$file" '^pasha/' '^pasha/(pasha|default_context)\.h$' ;;
    contexts/*)
      check_includes "$file" '^(pasha|contexts)/' '^pasha/(pasha\.h|default_context\.h|detail/)'
      check_no_detail "$file" ;;
    functors/*)
      check_includes "$file" '^(pasha|functors)/' '^pasha/(pasha|default_context)\.h$' ;;
    *) violation "$file: no floor is defined for this folder" ;;
  esac
done
echo "checked $checked files, $violations violations"
((violations == 0))
