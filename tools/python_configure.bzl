"""The Python interpreter pasha's extension module is built for, and its headers.

The repository @python_headers holds the C headers of one CPython interpreter (include/), pybind11's
headers (pybind11/, from Debian's pybind11-dev) and interpreter.json, which says which interpreter it
was: its path, version and EXT_SUFFIX. The interpreter is $PASHA_PYTHON, or Debian's /usr/bin/python3
when that is unset. pasha's build backend (python/build_backend) sets it to the interpreter that runs
pip, through --repo_env, with $PASHA_PYTHON_ID, which names that interpreter's build (version, ABI,
headers, real executable): another interpreter at the same path (a venv made again) is a change too.
A change of interpreter rebuilds only the extension module.
"""

DEFAULT_PYTHON = "/usr/bin/python3"
PYBIND11_INCLUDE = "/usr/include/pybind11"

_DESCRIBE = """
import json, sys, sysconfig
print(json.dumps({
    "python": sys.executable,
    "version": "%d.%d" % sys.version_info[:2],
    "include": sysconfig.get_paths()["include"],
    "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
}))
"""

def _python_headers_impl(ctx):
    python = ctx.os.environ.get("PASHA_PYTHON", "") or DEFAULT_PYTHON
    result = ctx.execute([python, "-I", "-c", _DESCRIBE])
    if result.return_code != 0:
        fail("python_configure: cannot run PASHA_PYTHON=%s: %s" % (python, result.stderr))
    found = json.decode(result.stdout.strip())
    include = ctx.path(found["include"])
    if not include.get_child("Python.h").exists:
        fail("python_configure: %s has no C headers in %s (Debian: apt install python3-dev)" %
             (python, found["include"]))
    pybind11 = ctx.path(PYBIND11_INCLUDE)
    if not pybind11.get_child("pybind11.h").exists:
        fail("python_configure: no pybind11 headers in %s (Debian: apt install pybind11-dev)" %
             PYBIND11_INCLUDE)
    ctx.symlink(include, "include")
    ctx.symlink(pybind11, "pybind11")
    ctx.file("interpreter.json", json.encode(found) + "\n")
    ctx.symlink(ctx.attr.build_file, "BUILD.bazel")
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)

python_headers = repository_rule(
    implementation = _python_headers_impl,
    attrs = {"build_file": attr.label(mandatory = True)},
    environ = ["PASHA_PYTHON", "PASHA_PYTHON_ID"],
)
