// The OpenMP peers, in their own file so that only they are compiled with -fopenmp semantics in mind.
#include <omp.h>

#include <cstddef>

#include "benchmarks/baselines.h"
#include "benchmarks/kernels.h"

namespace pasha::bench {

void openmp_map(Workload workload, const double* in, double* out, std::size_t n, int threads) {
  switch (workload) {
    case Workload::triple:
#pragma omp parallel for schedule(static) num_threads(threads)
      for (std::size_t i = 0; i < n; ++i) triple(in, out, i);
      break;
    case Workload::compute:
#pragma omp parallel for schedule(static) num_threads(threads)
      for (std::size_t i = 0; i < n; ++i) out[i] = compute_chain(in[i]);
      break;
    case Workload::rows:
#pragma omp parallel for schedule(static) num_threads(threads)
      for (std::size_t i = 0; i < n; ++i) fill_row(in[i], out + i * kRowLength);
      break;
  }
}

void openmp_empty(std::size_t n, int threads) {
  if (n == 0) {
#pragma omp parallel num_threads(threads)
    {
      asm volatile("" ::: "memory");
    }
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::size_t i = 0; i < n; ++i) asm volatile("" ::: "memory");
}

}  // namespace pasha::bench
