#!/usr/bin/env bash
# Runs pytest on a test folder under mpirun, every rank with the `pasha` package of this build:
#   run_pytest_mpi.sh MPIRUN_TEST_SH RANKS RANKS_PER_NODE TEST_FOLDER
# (contexts/mpi/mpirun_test.sh starts the ranks; RANKS_PER_NODE > 0 simulates nodes.)
set -euo pipefail
mpirun_test=$1 ranks=$2 per_node=$3 folder=$4
cd "${TEST_SRCDIR}/${TEST_WORKSPACE}"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
[[ -n "${PASHA_MAKE_RUN:-}" ]] && export PASHA_MAKE_RUN="$PWD/$PASHA_MAKE_RUN"
exec "$mpirun_test" "$ranks" "$per_node" /usr/bin/python3 -m pytest -p no:cacheprovider -q "$folder"
