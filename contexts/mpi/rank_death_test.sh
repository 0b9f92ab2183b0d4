#!/usr/bin/env bash
# A rank that dies in the middle of a map (SIGKILL, as the OOM killer does) ends the whole job: mpirun
# reports it and kills the other ranks, which were waiting in pasha's collectives. Nothing hangs and
# no process of the job is left behind.
#   rank_death_test.sh MPIRUN_TEST_SH TEST_BINARY
set -u
mpirun_test=$1 binary=$2
start=$(date +%s)
PASHA_TEST_KILL_RANK=1 timeout 120 "$mpirun_test" 3 0 "$binary" --gtest_filter='MpiFaults.*' >"${TEST_TMPDIR}/out" 2>&1
status=$?
elapsed=$(($(date +%s) - start))
if ((status == 0)); then
  echo "the job succeeded although a rank was killed"; cat "${TEST_TMPDIR}/out"; exit 1
fi
if ((status == 124)); then
  echo "the job hung after a rank was killed"; cat "${TEST_TMPDIR}/out"; exit 1
fi
sleep 1
# The sandbox gives the test its own PID namespace: any process by the binary's name is this job's.
name=$(basename "$binary" | cut -c1-15)
if pgrep -x "$name" >/dev/null || pgrep -x mpirun >/dev/null; then
  echo "processes of the job are left:"; ps -e -o pid,ppid,stat,comm; exit 1
fi
echo "mpirun ended with status $status after ${elapsed}s:"; grep -v "^\s*$" "${TEST_TMPDIR}/out" | tail -12
