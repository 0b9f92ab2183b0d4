// out[i] = 3 * in[i] over N doubles with pasha's C++ map: what //benchmarks:py_bench compares the same
// map of a compiled (numba) kernel from Python with. Maps once to warm up (the pool's threads, the
// pages of `out`), then prints the seconds of each timed map, one per line, and the sum of `out`
// (so that the caller can check it).
//
//   triple_map N WORKERS REPETITIONS [threads|processes]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <numeric>
#include <string>

#include "pasha/pasha.h"

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: triple_map N WORKERS REPETITIONS [threads|processes]\n");
    return 2;
  }
  try {
    const auto n = static_cast<std::size_t>(std::stoull(argv[1]));
    const int workers = std::stoi(argv[2]);
    const std::string kind = argc == 5 ? argv[4] : "threads";
    std::unique_ptr<pasha::Context> context;
    if (kind == "threads") {
      context = std::make_unique<pasha::ThreadContext>(workers);
    } else if (kind == "processes") {
      context = std::make_unique<pasha::ProcessContext>(workers);
    } else {
      throw std::invalid_argument("the context is threads or processes, not " + kind);
    }
    auto input = context->alloc<double>({n});
    std::iota(input.begin(), input.end(), 0.0);
    auto output = context->alloc<double>({n}, {.fill = 0});
    const auto triple = [&] {
      context->map([output](int, std::size_t index, double value) mutable { output[index] = 3 * value; }, input);
    };
    triple();
    for (int r = 0; r < std::stoi(argv[3]); ++r) {
      const auto start = std::chrono::steady_clock::now();
      triple();
      std::printf("%.6f\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::printf("total %.17g\n", std::accumulate(output.begin(), output.end(), 0.0));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "triple_map: %s\n", error.what());
    return 1;
  }
  return 0;
}
