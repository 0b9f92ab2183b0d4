#!/usr/bin/env bash
# The main job: runs the benchmarks (map_bench_bin) through tools/tune.py, which shows progress and
# prints the answer. Arguments go to tune.py: --full, --json FILE, --filter REGEX, --repetitions N.
set -euo pipefail
here="${RUNFILES_DIR:-$0.runfiles}/pasha"
[[ -d "$here" ]] || here=$(pwd)
# Debian's python3, where tools/bazel installed python3-matplotlib (another python3 earlier on PATH,
# such as a pyenv one, would lack it).
python=/usr/bin/python3
[[ -x "$python" ]] || python=python3
exec "$python" "$here/tools/tune.py" --binary "$here/benchmarks/map_bench_bin" "$@"
