// The lsxfel command: prints what a European XFEL run directory or file holds, like EXtra-data's
// lsxfel: the train range, then each source with its index groups (how many trains have data) and,
// with --keys, its keys and their entry shapes. --check then reads every numeric key of every train,
// in parallel on the given context with a progress report, and lists the trains that cannot be read
// (like extra-data-validate); files that could not be opened count as problems too.
//
// One implementation for the C++ tool (//tools/xfel:lsxfel) and the Python module
// (python3 -m pasha.xfel.lsxfel).
#ifndef PASHA_FUNCTORS_XFEL_LSXFEL_H_
#define PASHA_FUNCTORS_XFEL_LSXFEL_H_

#include <string>
#include <vector>

#include "pasha/core/context.h"

namespace pasha::xfel {

// Runs `lsxfel ARGS` (ARGS: RUN_DIRECTORY|FILE.h5 [--keys] [--check]), printing to stdout (errors
// to stderr); returns the exit status: 0, 1 when the run cannot be opened or --check found problems,
// 2 for bad arguments.
int lsxfel(const std::vector<std::string>& args, Context& context);

}  // namespace pasha::xfel

#endif  // PASHA_FUNCTORS_XFEL_LSXFEL_H_
