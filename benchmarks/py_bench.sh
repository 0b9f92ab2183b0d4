#!/usr/bin/env bash
# pasha from Python, against what a Python user writes by hand: runs benchmarks/py_bench.py with the
# `pasha` package of this build, on Debian's python3 (where tools/bazel installed numpy, h5py and
# mpi4py). Arguments go to py_bench.py (--quick, --skip-xfel, --skip-mpi).
set -euo pipefail
here="${RUNFILES_DIR:-$0.runfiles}/pasha"
[[ -d "$here" ]] || here=$(pwd)
export PYTHONPATH="$here/python${PYTHONPATH:+:$PYTHONPATH}"
export PASHA_MAKE_RUN="$here/tools/xfel/make_run" PASHA_XFEL_SUM="$here/benchmarks/xfel_sum" \
  PASHA_TRIPLE_MAP="$here/benchmarks/triple_map"
exec /usr/bin/python3 "$here/benchmarks/py_bench.py" "$@"
