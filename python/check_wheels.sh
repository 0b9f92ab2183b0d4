#!/usr/bin/env bash
# Builds pasha's wheel with `pip wheel` (offline, through the build backend and Bazel) for every CPython
# given, or for Debian's /usr/bin/python3 and pyenv's 3.9 to 3.13, and checks each in a fresh venv of
# its interpreter:
#   - with numpy (Debian's interpreter; pyenv's 3.11 with Debian's numpy, same ABI): the quick guide runs;
#   - without numpy: `import pasha` is an ImportError that names numpy, and the extension module loads.
# Prints one line per interpreter, "wheel ok: ..." or "wheel FAILED: ...", and exits 1 if any failed.
#
#   python/check_wheels.sh [PYTHON...]
set -uo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1

pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
if (($# > 0)); then
  interpreters=("$@")
else
  interpreters=()
  for version in 3.9 3.10 3.11 3.12 3.13; do
    found=$(ls -d "$pyenv_root"/versions/"$version".* 2>/dev/null | sort -V | tail -n 1)
    interpreters+=("${found:-pyenv-$version-is-missing}/bin/python3")
  done
  interpreters+=(/usr/bin/python3)  # last: the build tree is left configured for Debian's Python
fi

quick_guide='
import numpy as np
import pasha as psh
inp = np.random.rand(100)
outp = psh.alloc(like=inp)
def kernel(worker_id, index, value):
    outp[index] = 3 * value
for context in (psh.SerialContext(), psh.ThreadContext(2), psh.ProcessContext(4)):
    outp[:] = 0
    context.map(kernel, inp)
    np.testing.assert_allclose(outp, 3 * inp)
assert psh.__file__.startswith(sys_prefix), psh.__file__
'
without_numpy='
import importlib.util, pathlib, sysconfig
try:
    import pasha
except ImportError as error:
    assert str(error).startswith("pasha needs numpy"), error
else:
    raise AssertionError("pasha imported without numpy")
path, = pathlib.Path(sysconfig.get_paths()["platlib"], "pasha").glob("_pasha.*.so")
spec = importlib.util.spec_from_file_location("pasha._pasha", path)
spec.loader.exec_module(importlib.util.module_from_spec(spec))
'

failed=0
for python in "${interpreters[@]}"; do
  name=$("$python" -c 'import sys; print("%s-%d.%d.%d" % ((sys.executable,) + sys.version_info[:3]))' 2>/dev/null)
  if [[ -z "$name" ]]; then
    echo "wheel FAILED: no interpreter at $python"
    failed=1
    continue
  fi
  log="$work/$(basename "$(dirname "$(dirname "$python")")").log"
  out="$work/wheels-$RANDOM"
  venv="$work/venv-$RANDOM"
  {
    start=$SECONDS
    "$python" -m pip wheel --no-deps -w "$out" "$checkout" &&
      wheel=$(ls "$out"/pasha-*.whl) &&
      echo "built $(basename "$wheel") ($(stat -c %s "$wheel") bytes) in $((SECONDS - start)) s" &&
      if "$python" -c 'import numpy' 2>/dev/null; then has_numpy=1; else has_numpy=0; fi &&
      if ((has_numpy)); then "$python" -m venv --system-site-packages "$venv"; else "$python" -m venv "$venv"; fi &&
      "$venv/bin/pip" install --no-deps "$wheel" &&
      cd "$work" &&
      if ((has_numpy)); then
        "$venv/bin/python" -c "sys_prefix = '$venv'; $quick_guide"
      elif [[ "$name" == *-3.11.* ]] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
        "$venv/bin/python" -c "$without_numpy" &&
          PYTHONPATH=/usr/lib/python3/dist-packages "$venv/bin/python" -c "sys_prefix = '$venv'; $quick_guide"
      else
        "$venv/bin/python" -c "$without_numpy"
      fi
  } >"$log" 2>&1
  if (($? == 0)); then
    echo "wheel ok: $name: $(grep '^built ' "$log")"
  else
    echo "wheel FAILED: $name"
    tail -n 30 "$log"
    failed=1
  fi
  cd "$checkout"
done
exit "$failed"
