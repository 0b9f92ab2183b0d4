// Test helper: a fresh directory under $TEST_TMPDIR with a synthetic run written into it.
#ifndef PASHA_FUNCTORS_XFEL_TESTING_TEMP_RUN_H_
#define PASHA_FUNCTORS_XFEL_TESTING_TEMP_RUN_H_

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "functors/xfel/testing/make_run.h"

namespace pasha::xfel::testing {

// A new empty directory $TEST_TMPDIR/<name> (removed first if it exists).
inline std::string fresh_dir(const std::string& name) {
  const char* root = std::getenv("TEST_TMPDIR");
  if (root == nullptr) throw std::runtime_error("TEST_TMPDIR is not set (run under bazel test)");
  const std::filesystem::path dir = std::filesystem::path(root) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

struct TempRun {
  std::string dir;
  std::vector<std::string> files;
};

inline TempRun make_temp_run(const std::string& name, const mock::RunSpec& spec = {}) {
  TempRun run{fresh_dir(name), {}};
  run.files = mock::write_run(run.dir, spec);
  return run;
}

}  // namespace pasha::xfel::testing

#endif  // PASHA_FUNCTORS_XFEL_TESTING_TEMP_RUN_H_
