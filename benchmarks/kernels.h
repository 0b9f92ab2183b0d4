// The kernels map_bench times, shared by pasha's runs and the baselines so both do the same work.
#ifndef PASHA_BENCHMARKS_KERNELS_H_
#define PASHA_BENCHMARKS_KERNELS_H_

#include <cstddef>

namespace pasha::bench {

// Memory-bound: one read, one write, one multiply per element.
inline void triple(const double* in, double* out, std::size_t i) { out[i] = 3 * in[i]; }

// Compute-bound: a dependent chain of 32 multiply-adds per element.
inline double compute_chain(double x) {
  double y = x;
  for (int k = 0; k < 32; ++k) y = y * 0.999999 + 0.5;
  return y;
}

// Large output: each element fills a row of kRowLength doubles (4 KiB).
inline constexpr std::size_t kRowLength = 512;
inline void fill_row(double value, double* row) {
  for (std::size_t k = 0; k < kRowLength; ++k) row[k] = value + static_cast<double>(k);
}

// Imbalanced: the cost grows with the square of the position (the last elements cost the most), so a
// static split gives one worker far more work than the other.
inline double imbalanced(std::size_t i, std::size_t n, std::size_t max_steps) {
  const double x = static_cast<double>(i) / static_cast<double>(n);
  const auto steps = static_cast<std::size_t>(x * x * static_cast<double>(max_steps));
  double y = x;
  for (std::size_t k = 0; k < steps; ++k) y = y * 0.999999 + 0.5;
  return y;
}

}  // namespace pasha::bench

#endif  // PASHA_BENCHMARKS_KERNELS_H_
