// Damaged run files: truncated and bit-flipped copies of a generated file, with a fixed seed. Every
// variant must either read or fail with an exception; none may crash (also under --config=asan).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "contexts/serial/serial_context.h"
#include "functors/xfel/testing/make_run.h"
#include "functors/xfel/testing/temp_run.h"
#include "functors/xfel/xfel.h"

namespace pasha::xfel {
namespace {

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// How a damaged file failed: FormatError's message, or a description of anything else that was thrown.
struct Outcome {
  bool format_error = false;
  std::string what;
};

// (source, key) pairs to read: every numeric key of the undamaged file.
using Keys = std::vector<std::pair<std::string, std::string>>;

Keys numeric_keys(const std::string& path) {
  Keys keys;
  const DataCollection dc = H5File(path);
  for (const std::string& source : dc.all_sources()) {
    for (const std::string& key : dc.keys_for_source(source)) {
      try {
        (void)dc.key_data<double>(source, key);
        keys.emplace_back(source, key);
      } catch (const FormatError&) {
        // Strings: not readable as numbers, by design.
      }
    }
  }
  return keys;
}

// Opens the file and reads each of `keys`, in bulk and per train; collects the failures (a damaged
// key does not stop the others, so that more code sees damaged input).
std::vector<Outcome> read_everything(const std::string& path, const Keys& keys) {
  std::vector<Outcome> failures;
  const auto attempt = [&](auto&& body) {
    try {
      body();
    } catch (const FormatError& e) {
      failures.push_back({true, e.what()});
    } catch (const std::exception& e) {
      failures.push_back({false, std::string("a ") + typeid(e).name() + ": " + e.what()});
    }
  };
  attempt([&] {
    const DataCollection dc = H5File(path);
    SerialContext ctx;
    for (const auto& [source, key] : keys) {
      attempt([&] {
        const auto kd = dc.key_data<double>(source, key);
        (void)kd.ndarray();
        ctx.map([](int, std::size_t, std::uint64_t, Array<double>) {}, kd);
      });
    }
    // The camera pixels in their stored type, so that the raw paths (pread and mapped rows) see the
    // damage too.
    for (const std::uint64_t map_from : {std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()}) {
      attempt([&] {
        const testing::ScopedMapThreshold mapped(map_from);
        const auto kd = dc.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
        ctx.map([](int, std::size_t, std::uint64_t, Array<std::uint16_t> rows) {
          volatile std::uint64_t sum = 0;
          for (std::uint16_t v : rows) sum = sum + v;  // touch every byte given out
        }, kd);
      });
    }
  });
  return failures;
}

// A FormatError names the file, then the HDF5 path inside it ("<file>: INDEX/trainId: ...") unless
// the file could not be opened as HDF5 at all.
::testing::AssertionResult NamesTheFileAndHdf5Path(const std::string& what, const std::string& file) {
  if (what.rfind(file + ": ", 0) != 0) return ::testing::AssertionFailure() << "does not start with the file: " << what;
  const std::string rest = what.substr(file.size() + 2);
  // An HDF5 path: a top-level group of a run file, maybe followed by "/...", then ": " and the reason.
  const std::size_t path_end = rest.find(": ");
  const std::string path = rest.substr(0, path_end);
  const std::string top = path.substr(0, path.find('/'));
  const bool names_path = path_end != std::string::npos && path.find(' ') == std::string::npos &&
                          (top == "METADATA" || top == "INDEX" || top == "CONTROL" || top == "INSTRUMENT");
  const bool file_level = rest.rfind("not an HDF5 file", 0) == 0 || rest.rfind("cannot open", 0) == 0 ||
                          rest.rfind("not a regular file", 0) == 0;
  if (names_path || file_level) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "names no HDF5 path: " << what;
}

TEST(XfelDamagedFiles, TruncatedOrBitFlippedFilesReadOrThrowButNeverCrash) {
  mock::RunSpec spec;
  spec.num_trains = 12;
  spec.da_trains_per_file = 12;
  spec.det_trains_per_file = 12;
  spec.image_height = 8;
  spec.image_width = 8;
  // HDF5 1.10.8 itself dereferences damaged variable-length string heaps and unchecksummed old-format
  // metadata without checks (it segfaults in H5HG_read); the damage it can detect is what a reader
  // can turn into exceptions. So the corpus is a file in the checksummed format with fixed-length
  // strings.
  spec.fixed_length_strings = true;
  spec.checksummed_format = true;
  const testing::TempRun run = testing::make_temp_run("fuzz_source", spec);
  const std::vector<char> original = read_bytes(run.files[0]);
  ASSERT_GT(original.size(), 1000u);
  const Keys keys = numeric_keys(run.files[0]);
  ASSERT_GT(keys.size(), 5u);
  for (const Outcome& failure : read_everything(run.files[0], keys)) {
    ADD_FAILURE() << "the undamaged file: " << failure.what;
  }

  const std::string dir = testing::fresh_dir("fuzz_variants");
  std::mt19937_64 rng(20240611);
  int succeeded = 0, failed = 0;
  std::map<std::string, int> reasons;
  constexpr int kVariants = 300;
  for (int v = 0; v < kVariants; ++v) {
    std::vector<char> bytes = original;
    const int mode = v % 3;
    if (mode == 0) {
      bytes.resize(std::uniform_int_distribution<std::size_t>(0, bytes.size() - 1)(rng));
    } else {
      const int flips = mode == 1 ? 1 : std::uniform_int_distribution<int>(2, 16)(rng);
      for (int k = 0; k < flips; ++k) {
        const std::size_t at = std::uniform_int_distribution<std::size_t>(0, bytes.size() - 1)(rng);
        bytes[at] = static_cast<char>(bytes[at] ^ (1 << std::uniform_int_distribution<int>(0, 7)(rng)));
      }
    }
    const std::string path = dir + "/variant-" + std::to_string(v) + ".h5";
    write_bytes(path, bytes);
    const std::vector<Outcome> failures = read_everything(path, keys);
    (failures.empty() ? succeeded : failed) += 1;
    for (const Outcome& failure : failures) {
      EXPECT_TRUE(failure.format_error) << "variant " << v << " threw " << failure.what;
      EXPECT_TRUE(NamesTheFileAndHdf5Path(failure.what, path)) << "variant " << v;
      ++reasons[failure.what.substr(path.size() + 2, 40)];
    }
    std::filesystem::remove(path);
  }
  EXPECT_GT(failed, kVariants / 3) << "too few damaged variants were detected";
  EXPECT_GT(succeeded, 0) << "no variant read: bit flips in data should not matter";
  for (const auto& [reason, count] : reasons) std::printf("%5d  %s\n", count, reason.c_str());
  RecordProperty("succeeded", succeeded);
  RecordProperty("failed", failed);
}

}  // namespace
}  // namespace pasha::xfel
