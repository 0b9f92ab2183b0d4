// Test helper: a fresh directory under $TEST_TMPDIR with a synthetic run written into it.
#ifndef PASHA_FUNCTORS_XFEL_TESTING_TEMP_RUN_H_
#define PASHA_FUNCTORS_XFEL_TESTING_TEMP_RUN_H_

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "functors/xfel/detail/file_window.h"
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

// While alive, rows of at least `bytes` bytes stored raw are mapped rather than read (1: all of them;
// UINT64_MAX: none).
class ScopedMapThreshold {
 public:
  explicit ScopedMapThreshold(std::uint64_t bytes) : saved_(detail::FileWindow::min_bytes().exchange(bytes)) {}
  ~ScopedMapThreshold() { detail::FileWindow::min_bytes() = saved_; }
  ScopedMapThreshold(const ScopedMapThreshold&) = delete;
  ScopedMapThreshold& operator=(const ScopedMapThreshold&) = delete;

 private:
  std::uint64_t saved_;
};

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
