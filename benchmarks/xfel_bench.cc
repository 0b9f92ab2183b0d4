// Reading a European XFEL run with pasha, against the limit: a plain sequential read of the same
// files (what `cat` does) in the same run. Per train, the sum of its camera pixels into out[train];
// each context reads the run once per repetition, and the contexts and the plain read take turns, so
// the ratios compare runs made side by side.
//
//   tools/bazel run //benchmarks:xfel_bench [-- --trains=1400 --size=1024 --repetitions=5 --workers=N]
//
// Two workloads: the large run (default 1400 trains of 1024x1024 uint16 images, 0-3 a train, in
// sequence files of 128 trains: 4.4 GB) shows reading speed; the small run (200 trains of 256x256)
// shows the fixed cost per map. Each is generated once into a temporary folder that is removed at
// the end, also when the benchmark is interrupted. Figures are medians; GB/s is the files' bytes over
// the time taken (the images are all but a few KB of them).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pasha/pasha.h"
#include "functors/xfel/testing/make_run.h"
#include "functors/xfel/xfel.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace mock = pasha::xfel::mock;

struct Options {
  std::size_t trains = 1400;
  std::size_t size = 1024;
  std::size_t small_trains = 200;
  std::size_t small_size = 256;
  int repetitions = 5;
  int workers = 0;  // 0: the contexts' default (one per allowed physical core)
};

// The folder being filled or measured, removed by the signal handler if the run is interrupted.
char g_run_dir[64] = {};

void remove_run_dir_and_exit(int signal) {
  if (g_run_dir[0] != '\0') {
    // Not async-signal-safe in general; acceptable for a benchmark on its way out.
    std::error_code ignored;
    std::filesystem::remove_all(g_run_dir, ignored);
  }
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

// A generated run in a temporary folder, removed on destruction.
class TemporaryRun {
 public:
  TemporaryRun(std::size_t trains, std::size_t size) {
    std::snprintf(g_run_dir, sizeof g_run_dir, "%s", "/tmp/pasha_xfel_bench_XXXXXX");
    if (::mkdtemp(g_run_dir) == nullptr) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    dir_ = g_run_dir;
    mock::RunSpec spec;
    spec.num_trains = trains;
    spec.da_trains_per_file = 128;
    spec.with_detector = false;
    spec.image_height = size;
    spec.image_width = size;
    files_ = mock::write_run(dir_, spec);
    for (const std::string& f : files_) bytes_ += std::filesystem::file_size(f);
  }
  ~TemporaryRun() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    g_run_dir[0] = '\0';
  }
  TemporaryRun(const TemporaryRun&) = delete;
  TemporaryRun& operator=(const TemporaryRun&) = delete;

  const std::string& dir() const { return dir_; }
  const std::vector<std::string>& files() const { return files_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  std::string dir_;
  std::vector<std::string> files_;
  std::uint64_t bytes_ = 0;
};

// What `cat` does: every file read from start to end into one buffer, nothing else.
void plain_read(const std::vector<std::string>& files) {
  static std::vector<char> buffer(1 << 20);
  for (const std::string& path : files) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
    while (true) {
      const ssize_t got = ::read(fd, buffer.data(), buffer.size());
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw std::runtime_error(path + ": " + std::strerror(errno));
      if (got == 0) break;
    }
    ::close(fd);
  }
}

// The sum a careful C++ user writes: blocks of pixels summed in 32 bits (4096 of them cannot
// overflow), which the compiler vectorizes three times better than a 64-bit sum of each pixel.
std::uint64_t pixel_sum(const std::uint16_t* pixels, std::size_t n) {
  constexpr std::size_t kBlock = 4096;
  std::uint64_t total = 0;
  for (std::size_t begin = 0; begin < n; begin += kBlock) {
    const std::size_t end = std::min(n, begin + kBlock);
    std::uint32_t block = 0;
    for (std::size_t i = begin; i < end; ++i) block += pixels[i];
    total += block;
  }
  return total;
}

// One context's maps over the run: the pixel sum per train, or an empty kernel.
class PixelSums {
 public:
  PixelSums(pasha::Context& context, const pasha::xfel::KeyData<std::uint16_t>& images)
      : context_(context), images_(images), sums_(context.alloc<std::uint64_t>({images.size()}, {.fill = 0})) {}

  void sum() {
    context_.map(
        [sums = sums_](int, std::size_t index, std::uint64_t, pasha::Array<std::uint16_t> rows) mutable {
          sums[index] = pixel_sum(rows.data(), rows.size());
        },
        images_);
  }
  void read_only() {
    context_.map([](int, std::size_t, std::uint64_t, const pasha::Array<std::uint16_t>&) {}, images_);
  }
  // The sums agree with what the run's files hold (a benchmark that computes the wrong thing
  // measures nothing): recomputed from the values written, in a map of this context, with a progress
  // report (a few seconds on the large run).
  void check_against_the_run() const {
    const auto& ids = images_.train_ids();
    const std::size_t elements = images_.entry_shape().num_elements();
    auto wrong = context_.alloc<int>({ids.size()}, {.fill = 0});
    context_.map(
        [&](int, std::size_t t, std::uint64_t train_id) {
          std::uint64_t expected = 0;
          for (std::uint64_t row = 0; row < mock::camera_count(train_id); ++row) {
            for (std::size_t e = 0; e < elements; ++e) expected += mock::camera_pixel(train_id, row, e);
          }
          wrong[t] = sums_[t] != expected;
        },
        ids, {.progress = true, .progress_every = std::chrono::seconds(2)});
    expect_no_wrong_sum(wrong, "the values written");
  }
  // The sums agree with another context's.
  void check_against(const PixelSums& other) const {
    auto wrong = context_.alloc<int>({images_.size()}, {.fill = 0});
    for (std::size_t t = 0; t < images_.size(); ++t) wrong[t] = sums_[t] != other.sums_[t];
    expect_no_wrong_sum(wrong, other.context_.name());
  }

 private:
  void expect_no_wrong_sum(const pasha::Array<int>& wrong, const std::string& reference) const {
    for (std::size_t t = 0; t < wrong.size(); ++t) {
      if (wrong[t] != 0) {
        throw std::runtime_error("wrong sum for train " + std::to_string(images_.train_ids()[t]) + " in " +
                                 context_.name() + " (compared with " + reference + ")");
      }
    }
  }

  pasha::Context& context_;
  const pasha::xfel::KeyData<std::uint16_t>& images_;
  pasha::Array<std::uint64_t> sums_;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

struct Measured {
  std::string name;
  std::vector<double> seconds;
};

// Runs every contender once per repetition, in turn, and prints medians, GB/s and ratios to the plain
// read (first contender).
void compare(const std::string& title, std::uint64_t bytes, int repetitions,
             const std::vector<std::pair<std::string, std::function<void()>>>& contenders) {
  std::vector<Measured> measured;
  for (const auto& [name, run] : contenders) {
    run();  // warm: page cache, worker buffers, open files
    measured.push_back({name, {}});
  }
  for (int r = 0; r < repetitions; ++r) {
    for (std::size_t c = 0; c < contenders.size(); ++c) {
      const std::size_t i = (c + static_cast<std::size_t>(r)) % contenders.size();  // rotate who goes first
      const auto start = Clock::now();
      contenders[i].second();
      measured[i].seconds.push_back(seconds_since(start));
    }
  }
  std::printf("\n%s: %.3f GB, medians of %d\n", title.c_str(), static_cast<double>(bytes) / 1e9, repetitions);
  std::printf("  %-28s %10s %10s %16s\n", "", "ms", "GB/s", "speed vs read");
  const double reference = median(measured.front().seconds);
  for (const Measured& m : measured) {
    const double s = median(m.seconds);
    std::printf("  %-28s %10.2f %10.2f %15.2fx\n", m.name.c_str(), s * 1e3, static_cast<double>(bytes) / s / 1e9,
                reference / s);
  }
  std::fflush(stdout);
}

// The pixel sums (and, if asked, maps with an empty kernel: what a map costs beyond the kernel; rows
// of 1 MiB and more are mapped rather than read, so an empty kernel reads none of them).
void run_workload(const std::string& title, std::size_t trains, std::size_t size, bool with_empty_kernel,
                  const Options& options) {
  std::printf("generating %zu trains of %zux%zu images...\n", trains, size, size);
  std::fflush(stdout);
  const TemporaryRun run(trains, size);
  const auto collection = pasha::xfel::RunDirectory(run.dir());
  const auto images = collection.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");

  pasha::SerialContext serial;
  auto threads = options.workers > 0 ? std::make_unique<pasha::ThreadContext>(options.workers)
                                     : std::make_unique<pasha::ThreadContext>();
  auto processes = options.workers > 0 ? std::make_unique<pasha::ProcessContext>(options.workers)
                                       : std::make_unique<pasha::ProcessContext>();
  PixelSums on_serial(serial, images), on_threads(*threads, images), on_processes(*processes, images);
  const std::string w = "(" + std::to_string(threads->num_workers()) + ")";
  compare(title + ", sum of each train's pixels", run.bytes(), options.repetitions,
          {{"plain read of the files", [&] { plain_read(run.files()); }},
           {"pasha serial", [&] { on_serial.sum(); }},
           {"pasha threads" + w, [&] { on_threads.sum(); }},
           {"pasha processes" + w, [&] { on_processes.sum(); }}});
  on_processes.check_against_the_run();
  on_serial.check_against(on_processes);
  on_threads.check_against(on_processes);
  if (with_empty_kernel) {
    compare(title + ", empty kernel", run.bytes(), options.repetitions,
            {{"plain read of the files", [&] { plain_read(run.files()); }},
             {"pasha serial", [&] { on_serial.read_only(); }},
             {"pasha threads" + w, [&] { on_threads.read_only(); }},
             {"pasha processes" + w, [&] { on_processes.read_only(); }}});
  }
}

std::size_t parse_count(const char* text, const char* flag) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value == 0 || text[0] == '-') {
    throw std::invalid_argument(std::string(flag) + " wants a positive integer, got '" + text + "'");
  }
  return static_cast<std::size_t>(value);
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value_of = [&](const char* flag) -> const char* {
      const std::string prefix = std::string(flag) + "=";
      return arg.rfind(prefix, 0) == 0 ? argv[i] + prefix.size() : nullptr;
    };
    if (const char* v = value_of("--trains")) {
      options.trains = parse_count(v, "--trains");
    } else if (const char* v = value_of("--size")) {
      options.size = parse_count(v, "--size");
    } else if (const char* v = value_of("--repetitions")) {
      options.repetitions = static_cast<int>(std::min<std::size_t>(parse_count(v, "--repetitions"), 1000));
    } else if (const char* v = value_of("--workers")) {
      options.workers = static_cast<int>(std::min<std::size_t>(parse_count(v, "--workers"), 4096));
    } else {
      throw std::invalid_argument("unknown argument '" + arg +
                                  "'; flags: --trains=N --size=N --repetitions=N --workers=N");
    }
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  for (int signal : {SIGINT, SIGTERM, SIGHUP}) std::signal(signal, remove_run_dir_and_exit);
  try {
    const Options options = parse(argc, argv);
    run_workload("Large run (" + std::to_string(options.trains) + " trains of " + std::to_string(options.size) + "x" +
                     std::to_string(options.size) + ")",
                 options.trains, options.size, false, options);
    run_workload("Small run (" + std::to_string(options.small_trains) + " trains of " +
                     std::to_string(options.small_size) + "x" + std::to_string(options.small_size) +
                     "): the fixed cost per map",
                 options.small_trains, options.small_size, true, options);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "xfel_bench: %s\n", error.what());
    return 1;
  }
  return 0;
}
