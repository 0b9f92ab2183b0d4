#!/usr/bin/env bash
# Stages the `pasha` Python package as built: tools/bazel run //python:install -- DIR
# puts it in DIR/pasha (replacing what DIR/pasha held). DIR can go on PYTHONPATH for a quick try, and it is
# what the build backend (python/build_backend) packs into a wheel. To install pasha into a Python
# environment, use pip: `pip install .` from the checkout (README, Python).
set -euo pipefail
if (($# != 1)); then
  echo "usage: tools/bazel run //python:install -- DIR   (stages the package in DIR/pasha)" >&2
  echo "to install pasha into a Python environment: pip install . (from the checkout)" >&2
  exit 2
fi
runfiles="${RUNFILES_DIR:-$0.runfiles}/pasha"
[[ -d "$runfiles/python/pasha" ]] || runfiles="$(cd "$(dirname "$0")" && pwd)/install.runfiles/pasha"
source="$runfiles/python/pasha"
[[ -f "$source/__init__.py" ]] || { echo "install: the package is not in the runfiles ($source)" >&2; exit 1; }

target=$1
[[ "$target" = /* ]] || target="${BUILD_WORKING_DIRECTORY:-$PWD}/$target"
# A folder where pip installed a pasha (EXtra-pasha's or this one) is pip's to change.
for record in "$target"/pasha-*.dist-info "$target"/pasha-*.egg-info "$target"/pasha.egg-link; do
  if [[ -e "$record" ]]; then
    echo "install: pip manages $target/pasha ($record); use pip install . or pip uninstall pasha there" >&2
    exit 1
  fi
done
mkdir -p "$target"
rm -rf "$target/pasha"
mkdir -p "$target/pasha"
# Copies, not the runfiles' symlinks: the install must outlive this build's output tree.
(cd "$source" && find . \( -name '*.py' -o -name '*.pyi' -o -name 'py.typed' -o -name '*.so' \) -print0 |
  while IFS= read -r -d '' file; do
    mkdir -p "$target/pasha/$(dirname "$file")"
    cp -L "$file" "$target/pasha/$file"
  done)
chmod -R u+w "$target/pasha"
echo "pasha staged in $target/pasha"
