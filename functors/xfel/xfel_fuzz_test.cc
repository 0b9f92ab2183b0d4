// Damaged run files: truncated and bit-flipped copies of a generated file, with a fixed seed. Every
// variant must either read or fail with an exception; none may crash (also under --config=asan).
#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "contexts/serial_context.h"
#include "functors/xfel/testing/temp_run.h"
#include "functors/xfel/xfel.h"
#include "tools/xfel/make_run.h"

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

// Opens the file and reads every numeric key of every source, in bulk and per train.
void read_everything(const std::string& path) {
  const DataCollection dc = H5File(path);
  SerialContext ctx;
  for (const std::string& source : dc.all_sources()) {
    for (const std::string& key : dc.keys_for_source(source)) {
      try {
        const auto kd = dc.key_data<double>(source, key);
        (void)kd.ndarray();
        ctx.map([](int, std::size_t, std::uint64_t, Array<double>) {}, kd);
      } catch (const std::exception&) {
        // A damaged key; go on with the others, so that more code sees damaged input.
      }
    }
  }
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
  read_everything(run.files[0]);  // the undamaged file reads

  const std::string dir = testing::fresh_dir("fuzz_variants");
  std::mt19937_64 rng(20240611);
  int succeeded = 0, failed = 0;
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
    try {
      read_everything(path);
      ++succeeded;
    } catch (const std::exception&) {
      ++failed;
    }
    std::filesystem::remove(path);
  }
  EXPECT_EQ(succeeded + failed, kVariants);
  EXPECT_GT(failed, 0) << "no damaged variant was detected";
  RecordProperty("succeeded", succeeded);
  RecordProperty("failed", failed);
}

}  // namespace
}  // namespace pasha::xfel
