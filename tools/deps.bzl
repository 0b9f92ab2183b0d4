"""Repositories pasha needs, for pasha's own WORKSPACE and for any workspace that depends on it.

    load("@pasha//tools:deps.bzl", "pasha_dependencies")
    pasha_dependencies()

Every repository is declared only when the calling workspace has not declared one of the same name
already, so a consumer can override any of them by declaring it first. Everything is local: the
system libraries (GoogleTest, Google Benchmark, hwloc, HDF5, Open MPI, pybind11's headers) come
from Debian's packages (tools/bazel installs them), CPython's headers from the interpreter the
Python package is built for (tools/python_configure.bzl) and Bazel's own implicit
repositories from Debian's bazel-bootstrap-source package.
"""

load("//tools:python_configure.bzl", "python_headers")

# Where Debian's bazel-bootstrap-source package installs the repositories Bazel 4 asks for implicitly.
DEBIAN_BAZEL_MOCK_REPOS = "/usr/src/bazel-bootstrap/mock_repos"

_BAZEL_IMPLICIT_REPOS = [
    "bazel_skylib",
    "platforms",
    "remote_java_tools_linux",
    "rules_cc",
    "rules_java",
    "rules_pkg",
    "rules_proto",
]

# name -> (where a Debian -dev package installs the library, BUILD overlay).
_SYSTEM_LIBRARIES = {
    "com_github_google_benchmark": ("/usr", "benchmark.BUILD"),
    "com_google_googletest": ("/usr", "googletest.BUILD"),
    "hdf5": ("/usr", "hdf5.BUILD"),
    "hwloc": ("/usr", "hwloc.BUILD"),
    # Open MPI (libopenmpi-dev), for @pasha//contexts/mpi only.
    "openmpi": ("/usr/lib/x86_64-linux-gnu/openmpi", "openmpi.BUILD"),
}

def _stub_repository_impl(ctx):
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    ctx.file("BUILD.bazel", ctx.attr.build_file_content)

# A repository whose only content is the BUILD text given; used for remote_coverage_tools, which
# `bazel test` asks for even when coverage is off.
_stub_repository = repository_rule(
    implementation = _stub_repository_impl,
    attrs = {"build_file_content": attr.string(mandatory = True)},
    local = True,
)

_COVERAGE_STUB_BUILD = """
package(default_visibility = ["//visibility:public"])
filegroup(name = "coverage_report_generator", srcs = [])
filegroup(name = "lcov_merger", srcs = [])
"""

def pasha_dependencies(mock_repos = DEBIAN_BAZEL_MOCK_REPOS):
    """Declares every repository pasha needs that the calling workspace has not declared."""
    for name in _BAZEL_IMPLICIT_REPOS:
        if not native.existing_rule(name):
            native.local_repository(name = name, path = mock_repos + "/" + name)
    if not native.existing_rule("remote_coverage_tools"):
        _stub_repository(name = "remote_coverage_tools", build_file_content = _COVERAGE_STUB_BUILD)
    for name, (path, overlay) in _SYSTEM_LIBRARIES.items():
        if not native.existing_rule(name):
            native.new_local_repository(
                name = name,
                path = path,
                build_file = str(Label("//tools/third_party:" + overlay)),
            )
    # CPython's headers (of $PASHA_PYTHON, or python3-dev's) and pybind11's, for the Python package only.
    if not native.existing_rule("python_headers"):
        python_headers(name = "python_headers", build_file = Label("//tools/third_party:python.BUILD"))
