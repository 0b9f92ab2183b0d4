#!/usr/bin/env bash
# Checks that misuses of pasha's API fail to compile, with a message that says what is wrong, and
# that the public headers compile on their own.
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
expect_failure pasha/testdata/wrong_element_kernel.cc "must accept (worker_id, index, pasha::Array<T>)"
expect_failure pasha/testdata/alloc_like_of_a_list.cc "the prototype must be a pasha::Array, a contiguous range"

# The same compiler and flags accept correct use, so the failures above are the misuses'; and each
# public header includes what it uses.
for header in pasha/pasha.h pasha/default_context.h pasha/core/*.h functors/sequence/sequence.h \
              functors/ndarray/ndarray.h contexts/serial/serial_context.h contexts/threads/thread_context.h \
              contexts/processes/process_context.h; do
  if ! output=$("$CXX" -std=c++20 -fsyntax-only -I. -x c++ "$header" 2>&1); then
    echo "FAIL: $header does not compile on its own"
    echo "$output" | head -20
    failures=$((failures + 1))
  fi
done
if ! output=$("$CXX" -std=c++20 -fsyntax-only -I. pasha/testdata/generic_kernels.cc 2>&1); then
  echo "FAIL: generic kernels over arrays do not compile"
  echo "$output" | head -30
  failures=$((failures + 1))
fi
exit $((failures > 0))
