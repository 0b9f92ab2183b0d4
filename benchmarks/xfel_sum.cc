// The per-train pixel sum of a European XFEL run's camera images with pasha's C++ map: what
// //benchmarks:py_bench compares the same sum in a Python kernel (numpy's sum) with. Opens the run,
// maps once to warm up (page cache, forked workers' first touches), then prints the seconds of each
// timed map, one per line, and the total of the sums (so that the caller can check them).
//
//   xfel_sum RUN_DIRECTORY WORKERS REPETITIONS [processes|threads]   (a context of WORKERS workers)
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <stdexcept>
#include <numeric>
#include <string>

#include "functors/xfel/xfel.h"
#include "pasha/pasha.h"

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: xfel_sum RUN_DIRECTORY WORKERS REPETITIONS [processes|threads]\n");
    return 2;
  }
  try {
    const auto run = pasha::xfel::RunDirectory(argv[1]);
    const auto images = run.key_data<std::uint16_t>("FXE_XAD_GEC/CAM/CAMERA:daqOutput", "data.image.pixels");
    const std::string kind = argc == 5 ? argv[4] : "processes";
    std::unique_ptr<pasha::Context> context;
    if (kind == "processes") {
      context = std::make_unique<pasha::ProcessContext>(std::stoi(argv[2]));
    } else if (kind == "threads") {
      context = std::make_unique<pasha::ThreadContext>(std::stoi(argv[2]));
    } else {
      throw std::invalid_argument("the context is processes or threads, not " + kind);
    }
    auto sums = context->alloc<std::uint64_t>({images.size()}, {.fill = 0});
    const auto sum_each_train = [&] {
      context->map(
          [sums](int, std::size_t index, std::uint64_t, pasha::Array<std::uint16_t> rows) mutable {
            // The plain 64-bit sum of every pixel, as numpy's sum() of the rows computes it.
            sums[index] = std::accumulate(rows.begin(), rows.end(), std::uint64_t{0});
          },
          images);
    };
    sum_each_train();
    for (int r = 0; r < std::stoi(argv[3]); ++r) {
      const auto start = std::chrono::steady_clock::now();
      sum_each_train();
      std::printf("%.6f\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::printf("total %llu\n",
                static_cast<unsigned long long>(std::accumulate(sums.begin(), sums.end(), std::uint64_t{0})));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "xfel_sum: %s\n", error.what());
    return 1;
  }
  return 0;
}
