// Writes a synthetic European XFEL run (functors/xfel/testing/make_run.h) into a directory.
//
//   bazel run //tools/xfel:make_run -- OUTDIR [--version 1.0] [--trains 64] [--first-train 10000]
//       [--da-per-file 25] [--det-per-file 40] [--image HxW] [--old-index] [--no-detector]
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "functors/xfel/testing/make_run.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: make_run OUTDIR [--version 0.5|1.0|1.1|1.2] [--trains N] [--first-train ID]\n"
               "                [--da-per-file N] [--det-per-file N] [--image HxW] [--old-index] [--no-detector]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  pasha::xfel::mock::RunSpec spec;
  std::string directory;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
        return argv[++i];
      };
      if (arg == "--version") {
        spec.version = value();
      } else if (arg == "--trains") {
        spec.num_trains = std::stoul(value());
      } else if (arg == "--first-train") {
        spec.first_train = std::stoull(value());
      } else if (arg == "--da-per-file") {
        spec.da_trains_per_file = std::stoul(value());
      } else if (arg == "--det-per-file") {
        spec.det_trains_per_file = std::stoul(value());
      } else if (arg == "--image") {
        const std::string hw = value();
        const auto x = hw.find('x');
        if (x == std::string::npos) throw std::invalid_argument("--image wants HxW, got " + hw);
        spec.image_height = std::stoul(hw.substr(0, x));
        spec.image_width = std::stoul(hw.substr(x + 1));
      } else if (arg == "--old-index") {
        spec.old_index = true;
      } else if (arg == "--no-detector") {
        spec.with_detector = false;
      } else if (!arg.empty() && arg[0] == '-') {
        std::fprintf(stderr, "make_run: unknown option %s\n", arg.c_str());
        return usage();
      } else if (directory.empty()) {
        directory = arg;
      } else {
        return usage();
      }
    }
    if (directory.empty()) return usage();
    if (::mkdir(directory.c_str(), 0777) != 0 && errno != EEXIST) {
      std::fprintf(stderr, "make_run: cannot create %s: %s\n", directory.c_str(), std::strerror(errno));
      return 1;
    }
    for (const std::string& path : pasha::xfel::mock::write_run(directory, spec)) std::printf("%s\n", path.c_str());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "make_run: %s\n", error.what());
    return 1;
  }
  return 0;
}
