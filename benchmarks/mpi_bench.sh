#!/usr/bin/env bash
# Runs mpi_bench under mpirun on RANKS ranks of this machine (default 4):
#   tools/bazel run //benchmarks:mpi_bench [-- RANKS]
# On a cluster, run the binary itself: mpirun -np N bazel-bin/benchmarks/mpi_bench_bin (or srun).
set -euo pipefail
here="${RUNFILES_DIR:-$0.runfiles}/pasha"
[[ -d "$here" ]] || here=$(pwd)
ranks=${1:-4}
exec mpirun --allow-run-as-root --oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo \
  -np "$ranks" "$here/benchmarks/mpi_bench_bin"
