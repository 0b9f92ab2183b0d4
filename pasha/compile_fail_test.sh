#!/usr/bin/env bash
# Checks that misuses of pasha's API fail to compile, with a message that says what is wrong.
# Usage: compile_fail_test.sh; runs in the test's runfiles, compiling pasha/testdata/*.cc.
set -u
cd "${TEST_SRCDIR}/${TEST_WORKSPACE}" || exit 1
CXX=${CXX:-g++}
failures=0

expect_failure() {
  local source=$1 expected=$2 output
  if output=$("$CXX" -std=c++20 -fsyntax-only -I. "$source" 2>&1); then
    echo "FAIL: $source compiled, but must not"
    failures=$((failures + 1))
  elif ! grep -qF -- "$expected" <<<"$output"; then
    echo "FAIL: $source failed to compile without saying: $expected"
    echo "$output" | head -20
    failures=$((failures + 1))
  else
    echo "ok: $source: $expected"
  fi
}

expect_failure pasha/testdata/ambiguous_source.cc "matches more than one functor adapter"
expect_failure pasha/testdata/unmappable_source.cc "this type is not mappable"
expect_failure pasha/testdata/non_trivial_element.cc "T must be trivially copyable"

# The same compiler and flags accept correct use, so the failures above are the misuses'.
if ! "$CXX" -std=c++20 -fsyntax-only -I. pasha/pasha.h -x c++ 2>/dev/null; then
  echo "FAIL: pasha/pasha.h does not compile on its own"
  failures=$((failures + 1))
fi
exit $((failures > 0))
