// lsxfel: what a European XFEL run directory or file holds (functors/xfel/lsxfel.h); --check reads
// every train on pasha's default context.
//
//   bazel run //tools/xfel:lsxfel -- path/to/r0450 [--keys] [--check]
#include <string>
#include <vector>

#include "functors/xfel/lsxfel.h"
#include "pasha/pasha.h"

int main(int argc, char** argv) {
  return pasha::xfel::lsxfel(std::vector<std::string>(argv + 1, argv + argc), pasha::default_context());
}
