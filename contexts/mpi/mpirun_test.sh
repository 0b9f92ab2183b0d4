#!/usr/bin/env bash
# Runs a test binary under mpirun: mpirun_test.sh RANKS RANKS_PER_NODE BINARY [ARGS...]
# RANKS_PER_NODE > 0 makes every RANKS_PER_NODE consecutive ranks one node (PASHA_MPI_RANKS_PER_NODE).
set -euo pipefail
ranks=$1 per_node=$2 binary=$3
shift 3
command -v mpirun >/dev/null || { echo "mpirun is missing (tools/bazel installs openmpi-bin)"; exit 1; }
# Open MPI's session and shared-memory files go to the test's own directory: tests run side by side
# (each mpirun in its own PID namespace, so with the same job id) must not share them.
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
export TEST_TMPDIR="$tmp" TMPDIR="$tmp"
env=(-x TEST_TMPDIR -x TMPDIR)
((per_node > 0)) && env+=(-x "PASHA_MPI_RANKS_PER_NODE=$per_node")
# Shared memory and TCP on loopback only: the sandbox has no other network.
exec mpirun --allow-run-as-root --oversubscribe --tag-output --mca orte_tmpdir_base "$tmp" \
  --mca btl_vader_backing_directory "$tmp" --mca osc_sm_backing_directory "$tmp" \
  --mca btl self,vader,tcp --mca btl_tcp_if_include lo "${env[@]}" -np "$ranks" "$binary" "$@"
