#!/usr/bin/env bash
# Runs pytest on the given test folder with the `pasha` package of this build first on PYTHONPATH.
# Debian's /usr/bin/python3, where tools/bazel installed numpy, pytest and xarray (another python3
# earlier on PATH, such as a pyenv one, would lack them).
set -euo pipefail
cd "${TEST_SRCDIR}/${TEST_WORKSPACE}"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/python3 -m pytest -p no:cacheprovider -q "$@"
