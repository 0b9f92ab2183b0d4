#!/usr/bin/env bash
# Installs the `pasha` Python package: tools/bazel run //python:install [-- DIR]
#   DIR given: the package goes into DIR/pasha (put DIR on PYTHONPATH).
#   no DIR:    into the user's site-packages of /usr/bin/python3 (python3 -m site --user-site).
# The package is built for Debian's Python 3.11 (/usr/bin/python3), with its numpy.
set -euo pipefail
runfiles="${RUNFILES_DIR:-$0.runfiles}/pasha"
[[ -d "$runfiles/python/pasha" ]] || runfiles="$(cd "$(dirname "$0")" && pwd)/install.runfiles/pasha"
source="$runfiles/python/pasha"
[[ -f "$source/__init__.py" ]] || { echo "install: the package is not in the runfiles ($source)" >&2; exit 1; }

if (($# > 0)); then
  target=$1
  [[ "$target" = /* ]] || target="${BUILD_WORKING_DIRECTORY:-$PWD}/$target"
else
  target=$(/usr/bin/python3 -m site --user-site)
fi
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
echo "pasha installed in $target/pasha"
if (($# > 0)); then
  echo "use it with: PYTHONPATH=$target /usr/bin/python3 your_script.py"
fi
