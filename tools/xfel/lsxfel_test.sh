#!/usr/bin/env bash
# lsxfel on a synthetic run: lists it, and --check reads every train with a progress report; a
# damaged index makes --check fail naming the key.
set -u
make_run=$1 lsxfel=$2
run="${TEST_TMPDIR}/run"
mkdir -p "$run"
"$make_run" "$run" --trains 64 >/dev/null || exit 1
out=$("$lsxfel" "$run" --check 2>"${TEST_TMPDIR}/stderr") || { echo "lsxfel --check failed: $out"; exit 1; }
grep -q "64 trains (10000 - 10063)" <<<"$out" || { echo "no train range in: $out"; exit 1; }
grep -q "all 64 trains read" <<<"$out" || { echo "no check result in: $out"; exit 1; }
grep -q "pasha: 100%  64/64" "${TEST_TMPDIR}/stderr" || { echo "no progress report:"; cat "${TEST_TMPDIR}/stderr"; exit 1; }
"$lsxfel" "$run" --no-such-flag >/dev/null 2>&1 && { echo "an unknown flag was accepted"; exit 1; }
# Truncate a file in the middle: the keys whose data lay there cannot be read.
file=$(ls "$run"/*DA01-S00000.h5)
size=$(stat -c %s "$file")
truncate -s $((size / 2)) "$file"
if out=$("$lsxfel" "$run" --check 2>/dev/null); then
  echo "--check passed a truncated file: $out"
  exit 1
fi
grep -q "problems" <<<"$out" || { echo "no problems reported: $out"; exit 1; }
echo ok
