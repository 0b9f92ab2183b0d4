#!/usr/bin/env bash
# Stages the `pasha` Python package as built: tools/bazel run //python:install -- DIR
# puts it in DIR/pasha, and what it was built for in DIR/pasha-build.json (the interpreter's path,
# version and EXT_SUFFIX). DIR can go on PYTHONPATH for a quick try, and it is what the build backend
# (python/build_backend) packs into a wheel. To install pasha into a Python environment, use pip:
# `pip install .` from the checkout (README, Python).
#
# DIR/pasha is replaced only when this script staged it (or it does not exist): never a folder of the
# workspace, nor one that pip manages.
set -euo pipefail
if (($# != 1)); then
  echo "usage: tools/bazel run //python:install -- DIR   (stages the package in DIR/pasha)" >&2
  echo "to install pasha into a Python environment: pip install . (from the checkout)" >&2
  exit 2
fi
runfiles="${RUNFILES_DIR:-$0.runfiles}"
[[ -d "$runfiles/pasha/python/pasha" ]] || runfiles="$(cd "$(dirname "$0")" && pwd)/install.runfiles"
source="$runfiles/pasha/python/pasha"
[[ -f "$source/__init__.py" ]] || { echo "install: the package is not in the runfiles ($source)" >&2; exit 1; }

target=$1
[[ "$target" = /* ]] || target="${BUILD_WORKING_DIRECTORY:-$PWD}/$target"
mkdir -p "$target"
target=$(cd "$target" && pwd -P)
if [[ -n "${BUILD_WORKSPACE_DIRECTORY:-}" ]]; then
  workspace=$(cd "$BUILD_WORKSPACE_DIRECTORY" && pwd -P)
  if [[ "$target/" == "$workspace/"* ]]; then
    echo "install: $target is inside the workspace ($workspace): stage the package outside it" >&2
    exit 1
  fi
fi
# A folder where pip installed a pasha (EXtra-pasha's or this one) is pip's to change.
for record in "$target"/pasha-*.dist-info "$target"/pasha-*.egg-info "$target"/pasha.egg-link; do
  if [[ -e "$record" ]]; then
    echo "install: pip manages $target/pasha ($record); use pip install . or pip uninstall pasha there" >&2
    exit 1
  fi
done
marker=".staged-by-pasha-install"
if [[ -e "$target/pasha" && ! -e "$target/pasha/$marker" ]]; then
  echo "install: $target/pasha exists and was not staged by this script: not replacing it" >&2
  exit 1
fi
rm -rf "$target/pasha"
mkdir -p "$target/pasha"
# Copies, not the runfiles' symlinks: the install must outlive this build's output tree.
(cd "$source" && find . \( -name '*.py' -o -name '*.pyi' -o -name 'py.typed' -o -name '*.so' \) -print0 |
  while IFS= read -r -d '' file; do
    mkdir -p "$target/pasha/$(dirname "$file")"
    cp -L "$file" "$target/pasha/$file"
  done)
touch "$target/pasha/$marker"
cp -L "$runfiles/python_headers/interpreter.json" "$target/pasha-build.json"
chmod -R u+w "$target/pasha" "$target/pasha-build.json"
echo "pasha staged in $target/pasha"
