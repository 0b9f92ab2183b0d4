"""Compiler options for pasha's own code (not for its dependencies)."""

PASHA_COPTS = [
    "-std=c++20",
    "-Wall",
    "-Wextra",
    "-Werror",
    # GCC < 14 warns about members left out of designated initializers, which pasha's option structs
    # are designed for ({.fill = 0}).
    "-Wno-missing-field-initializers",
]

# Benchmarks and the tools that time things are always optimised, whatever the build mode.
PASHA_OPT_COPTS = PASHA_COPTS + ["-O3", "-DNDEBUG"]
