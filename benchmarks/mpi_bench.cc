// mpi_bench: pasha's MpiContext across 1 .. N ranks (run under mpirun; `tools/bazel run
// //benchmarks:mpi_bench` runs it on 4 ranks of this machine).
//
//   strong scaling   a fixed collection (compute: 2e6 elements, triple: 2e7) over the first k ranks
//   weak scaling     a fixed collection per rank (compute: 1e6, triple: 1e7 elements per rank)
//   making whole     the extra time of a map whose index-aligned output (8 MB per node) is gathered
//                    across nodes (every rank its own node: PASHA_MPI_RANKS_PER_NODE=1), against a bare
//                    MPI_Allgatherv of the same bytes among the same ranks
//
// Each figure is the median of 7 repetitions, each between two barriers over the ranks taking part;
// efficiency is time(1 rank) / time(k ranks) for weak scaling and time(1) / (k time(k)) for strong.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <ranges>
#include <string>
#include <vector>

#include "benchmarks/kernels.h"
#include "contexts/mpi/mpi_context.h"
#include "pasha/pasha.h"

namespace {

constexpr int kRepetitions = 7;

// The median time of `body` over kRepetitions, each between barriers of `comm`.
double median_seconds(MPI_Comm comm, const std::function<void()>& body) {
  std::vector<double> times;
  body();  // warm up
  for (int r = 0; r < kRepetitions; ++r) {
    MPI_Barrier(comm);
    const double start = MPI_Wtime();
    body();
    MPI_Barrier(comm);
    times.push_back(MPI_Wtime() - start);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// The first `k` ranks of MPI_COMM_WORLD (MPI_COMM_NULL on the others).
MPI_Comm first_ranks(int k) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, rank < k ? 0 : MPI_UNDEFINED, rank, &comm);
  return comm;
}

// One map of `kernel` over n elements on k ranks, each with a local context of `local_workers`.
double time_map(int k, std::size_t n, const std::string& kernel, const std::string& local, int local_workers) {
  MPI_Comm comm = first_ranks(k);
  double seconds = 0;
  if (comm != MPI_COMM_NULL) {
    pasha::MpiContext context(pasha::make_context(local, local == "serial" ? 1 : local_workers), comm);
    std::vector<double> input(n);
    for (std::size_t i = 0; i < n; ++i) input[i] = static_cast<double>(i % 1000) * 0.5;
    auto out = context.alloc<double>(n, {.fill = 0});
    seconds = median_seconds(comm, [&] {
      if (kernel == "compute") {
        context.map([&](int, std::size_t i, double v) { out[i] = pasha::bench::compute_chain(v); }, input);
      } else {
        context.map([&](int, std::size_t i, double v) { out[i] = 3 * v; }, input);
      }
    });
  }
  if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
  MPI_Bcast(&seconds, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  return seconds;
}

void scaling(int ranks, bool print) {
  struct Setup {
    const char* kernel;
    std::size_t strong_n;
    std::size_t weak_n;
  };
  for (const Setup setup : {Setup{"compute", 2'000'000, 1'000'000}, Setup{"triple", 20'000'000, 10'000'000}}) {
    for (const char* local : {"serial", "threads"}) {
      const int workers = std::string(local) == "serial" ? 1 : 2;
      double strong_one = 0, weak_one = 0;
      for (int k = 1; k <= ranks; ++k) {
        const double strong = time_map(k, setup.strong_n, setup.kernel, local, workers);
        const double weak = time_map(k, setup.weak_n * static_cast<std::size_t>(k), setup.kernel, local, workers);
        if (k == 1) {
          strong_one = strong;
          weak_one = weak;
        }
        if (print) {
          std::printf("%-8s %-8s ranks %d x %d worker(s): strong %9.2f ms (efficiency %.2f)   weak %9.2f ms (efficiency %.2f)\n",
                      setup.kernel, local, k, workers, 1e3 * strong, strong_one / (k * strong), 1e3 * weak, weak_one / weak);
        }
      }
    }
  }
}

// The gather's cost against a bare MPI_Allgatherv of the same bytes, every rank its own node.
void making_whole(int ranks, bool print) {
  setenv("PASHA_MPI_RANKS_PER_NODE", "1", 1);
  constexpr std::size_t kPerNode = 1 << 20;  // doubles: 8 MiB per node
  const std::size_t n = kPerNode * static_cast<std::size_t>(ranks);
  double with_output = 0, without = 0, bare = 0;
  {
    pasha::MpiContext context(std::make_shared<pasha::SerialContext>());
    const auto elements = std::views::iota(std::size_t{0}, n);
    without = median_seconds(MPI_COMM_WORLD, [&] { context.map([](int, std::size_t, std::size_t) {}, elements); });
    auto out = context.alloc<double>(n, {.fill = 0});
    with_output = median_seconds(MPI_COMM_WORLD, [&] { context.map([](int, std::size_t, std::size_t) {}, elements); });
  }
  {
    std::vector<double> buffer(n, 1.0);
    std::vector<int> counts(static_cast<std::size_t>(ranks), static_cast<int>(kPerNode));
    std::vector<int> displacements(static_cast<std::size_t>(ranks));
    for (int r = 0; r < ranks; ++r) displacements[static_cast<std::size_t>(r)] = r * static_cast<int>(kPerNode);
    bare = median_seconds(MPI_COMM_WORLD, [&] {
      MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer.data(), counts.data(), displacements.data(),
                     MPI_DOUBLE, MPI_COMM_WORLD);
    });
  }
  // A map that reads three index-aligned inputs the context allocated and writes one output: by
  // default all four are made whole after it; with .writes = pasha::writes(out), the output only.
  double every_array = 0, written_only = 0;
  {
    pasha::MpiContext context(std::make_shared<pasha::SerialContext>());
    std::vector<pasha::Array<double>> inputs;
    for (int k = 0; k < 3; ++k) inputs.push_back(context.alloc<double>(n, {.fill = 1.0 + k}));
    auto out = context.alloc<double>(n, {.fill = 0});
    const auto kernel = [&](int, std::size_t i, std::size_t) { out[i] = inputs[0][i] + inputs[1][i] * inputs[2][i]; };
    const auto elements = std::views::iota(std::size_t{0}, n);
    every_array = median_seconds(MPI_COMM_WORLD, [&] { context.map(kernel, elements); });
    written_only = median_seconds(MPI_COMM_WORLD, [&] { context.map(kernel, elements, {.writes = pasha::writes(out)}); });
  }
  unsetenv("PASHA_MPI_RANKS_PER_NODE");
  if (print) {
    const double gather = with_output - without;
    std::printf("\nmaking an index-aligned output of %zu MB whole across %d nodes (1 rank each):\n", n * 8 >> 20, ranks);
    std::printf("  empty map without the array %.3f ms, with it %.3f ms: gathering costs %.3f ms\n", 1e3 * without,
                1e3 * with_output, 1e3 * gather);
    std::printf("  bare MPI_Allgatherv of the same bytes %.3f ms: ratio %.2f (target <= 1.2)\n", 1e3 * bare,
                gather / bare);
    std::printf("a map reading three index-aligned inputs from the context and writing one output:\n");
    std::printf("  every array made whole (the default) %.3f ms; .writes = pasha::writes(out) %.3f ms (%.2fx)\n",
                1e3 * every_array, 1e3 * written_only, written_only > 0 ? every_array / written_only : 0.0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const bool print = rank == 0;
  if (print) std::printf("mpi_bench on %d ranks (medians of %d repetitions)\n\n", ranks, kRepetitions);
  scaling(ranks, print);
  if (ranks > 1) making_whole(ranks, print);
  MPI_Finalize();
  return 0;
}
