// What pasha's figures are compared with, run with the same kernels (benchmarks/kernels.h):
// hand-written peers (OpenMP, std::thread, a plain fork loop into a MAP_SHARED buffer) and the copy-based
// IPC that zero-copy replaces (results sent back through a pipe or a socketpair, or written into
// separate per-worker buffers that the caller gathers). Every function splits [0, n) into `workers`
// contiguous shares and returns when the output is complete; they abort the benchmark on a system error.
#ifndef PASHA_BENCHMARKS_BASELINES_H_
#define PASHA_BENCHMARKS_BASELINES_H_

#include <cstddef>

namespace pasha::bench {

enum class Workload {
  triple,   // out[i] = 3 * in[i]
  compute,  // out[i] = compute_chain(in[i])
  rows,     // out row i (kRowLength doubles) = fill_row(in[i])
};

// Doubles of output per element.
std::size_t output_per_element(Workload workload);
// Runs the workload for elements [begin, end); the output of element `out_first` goes to out[0].
void run_range(Workload workload, const double* in, double* out, std::size_t begin, std::size_t end,
               std::size_t out_first = 0);

// An anonymous MAP_SHARED mapping, as a hand-written fork program would use.
class SharedBuffer {
 public:
  explicit SharedBuffer(std::size_t doubles);
  ~SharedBuffer();
  SharedBuffer(const SharedBuffer&) = delete;
  SharedBuffer& operator=(const SharedBuffer&) = delete;
  double* data() const { return data_; }

 private:
  double* data_;
  std::size_t bytes_;
};

// Hand-written peers.
void openmp_map(Workload workload, const double* in, double* out, std::size_t n, int threads);
// n == 0: an empty parallel region; otherwise a parallel for of n iterations with an empty body.
void openmp_empty(std::size_t n, int threads);
void std_thread_map(Workload workload, const double* in, double* out, std::size_t n, int threads);
// `out` must be MAP_SHARED memory (SharedBuffer).
void fork_map(Workload workload, const double* in, double* out, std::size_t n, int workers);
// fork + waitpid of `workers` children that do nothing.
void fork_empty(int workers);

// Copy-based IPC baselines: each child computes its share into its own memory and sends it back.
void pipe_map(Workload workload, const double* in, double* out, std::size_t n, int workers);
void socketpair_map(Workload workload, const double* in, double* out, std::size_t n, int workers);
// Each child writes into a fresh per-worker result buffer; the caller copies them into `out`.
void gather_map(Workload workload, const double* in, double* out, std::size_t n, int workers);

}  // namespace pasha::bench

#endif  // PASHA_BENCHMARKS_BASELINES_H_
