#!/usr/bin/env bash
# Keeps pasha's floors: each folder includes only what lies below it.
#
#   floor                       may include ("..." includes)
#   pasha/core/                 pasha/core/
#   functors/<adapter>/         pasha/core/ (not its detail/), its own folder: no context, no other adapter
#   contexts/common/            pasha/core/ (the backend contract), contexts/common/
#   contexts/<context>/         pasha/core/ (the backend contract), contexts/common/, its own folder: no
#                               other context
#   pasha/ (umbrella, default)  pasha/, pasha/core/, contexts/serial|threads|processes/,
#                               functors/sequence|ndarray/
#   conformance/                conformance/, pasha/, pasha/core/, functors/sequence|ndarray/
#   benchmarks/, tools/,        their own folder, and pasha/, pasha/core/, contexts/, functors/, conformance/
#   python/
#   tests (*_test.cc, *_test.h, testdata/) of any floor: what their folder may include, and pasha/,
#                               contexts/, functors/, conformance/ (a test drives its floor through the
#                               library above it)
#
# and everywhere outside pasha/core/: no pasha/core/detail/ include; in contexts/: no `detail::` (the
# backend contract is all a context uses). No file is exempt.
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

# Every include of `file` must match `allowed` (an extended regular expression).
check_includes() {
  local file=$1 allowed=$2 include
  while read -r include; do
    [[ -z "$include" ]] && continue
    if [[ ! "$include" =~ $allowed ]]; then
      violation "$file includes \"$include\" (its floor allows: $allowed)"
    elif [[ "$include" == pasha/core/detail/* && "$file" != pasha/core/* ]]; then
      violation "$file includes \"$include\", pasha's internals (pasha/core/detail/)"
    fi
  done < <(includes_of "$file")
}

check_no_detail() {
  local file=$1
  if grep -n 'detail::' "$file" | grep -v '^[0-9]*:[[:space:]]*//' >/dev/null; then
    violation "$file uses pasha's internals (detail::); use the backend contract, pasha/core/backend.h"
  fi
}

# The README section a context author reads must not send them into pasha::detail.
check_readme() {
  local section
  section=$(sed -n '/^## Checking your own context/,/^## /p' "$1")
  [[ -z "$section" ]] && violation "$1 has no section \"Checking your own context\""
  grep -q 'detail::' <<<"$section" && violation "$1: \"Checking your own context\" mentions detail::"
}

readonly LIBRARY='pasha/|contexts/|functors/|conformance/'
readonly UMBRELLA='pasha/(pasha|default_context)\.h|pasha/core/|contexts/(serial|threads|processes)/|functors/(sequence|ndarray)/'

# The includes a (non-test) file of `folder` may have, as an extended regular expression.
floor_of() {
  local file=$1 folder
  case "$file" in
    pasha/core/*) echo '^pasha/core/' ;;
    functors/*/*)
      folder=${file#functors/}
      echo "^(pasha/core/|functors/${folder%%/*}/)" ;;
    contexts/common/*) echo '^(pasha/core/|contexts/common/)' ;;
    contexts/*/*)
      folder=${file#contexts/}
      echo "^(pasha/core/|contexts/common/|contexts/${folder%%/*}/)" ;;
    pasha/*) echo "^(${UMBRELLA})" ;;
    conformance/*) echo '^(conformance/|pasha/|functors/(sequence|ndarray)/)' ;;
    benchmarks/* | tools/* | python/*) echo "^(${file%%/*}/|${LIBRARY})" ;;
    *) echo "" ;;
  esac
}

is_test() {
  case "$1" in
    *_test.cc | *_test.h | */testdata/*) return 0 ;;
    *) return 1 ;;
  esac
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
  if [[ "$file" == README.md ]]; then
    check_readme "$file"
    continue
  fi
  case "$file" in *.h | *.cc) ;; *) continue ;; esac
  floor=$(floor_of "$file")
  if [[ -z "$floor" ]]; then
    violation "$file: no floor is defined for its folder"
    continue
  fi
  is_test "$file" && floor="${floor%)}|${LIBRARY})"
  check_includes "$file" "$floor"
  if [[ "$file" == contexts/* ]] && ! is_test "$file"; then check_no_detail "$file"; fi
done
echo "checked $checked files, $violations violations"
((violations == 0))
