// map_bench: which pasha context and how many workers to use on this machine, and what zero-copy
// results are worth. `tools/bazel run //benchmarks:map_bench` runs everything; tools/tune.py turns the
// JSON output into a tuning table and a plot.
//
// Benchmark names: BM_<implementation>/<workload>/n:<elements>/workers:<count>, where implementation is
//   serial, threads, processes           pasha's contexts, writing into arrays from ctx.alloc (zero-copy)
//   openmp, std_thread, fork_loop        hand-written peers (fork_loop writes into a MAP_SHARED buffer)
//   pipe, socketpair, gather             copy-based IPC: results sent back, or gathered and copied
// and workload is triple (out[i] = 3 * in[i]), compute (a chain of 32 multiply-adds), rows (4 KiB of
// output per element), imbalanced_static / imbalanced_dynamic (cost grows with the index), or empty
// (latency of a map that does nothing). Every benchmark reports items/s and bytes/s (bytes read plus
// written) and uses real time, since the work happens in other threads and processes.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <map>
#include <optional>
#include <ranges>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "benchmarks/baselines.h"
#include "benchmarks/kernels.h"
#include "pasha/pasha.h"

namespace pasha::bench {
namespace {

const char* workload_name(Workload workload) {
  switch (workload) {
    case Workload::triple:
      return "triple";
    case Workload::compute:
      return "compute";
    case Workload::rows:
      return "rows";
  }
  return "?";
}

// Contexts live for the whole run, so that pools and bindings are set up outside the timed loops.
Context& context_for(const std::string& kind, int workers) {
  static std::map<std::pair<std::string, int>, std::shared_ptr<Context>> contexts;
  auto& context = contexts[{kind, workers}];
  if (!context) context = make_context(kind, kind == "serial" ? std::optional<int>() : std::optional<int>(workers));
  return *context;
}

// The input of the current size; one at a time, to keep memory use bounded.
const std::vector<double>& input(std::size_t n) {
  static std::vector<double> values;
  if (values.size() != n) {
    // A new vector, not assign(): the old capacity would stay mapped and make every later fork
    // copy its page tables.
    values = std::vector<double>(n);
    for (std::size_t i = 0; i < n; ++i) values[i] = static_cast<double>(i % 1000) * 0.5;
  }
  return values;
}

void set_counters(benchmark::State& state, Workload workload, std::size_t n) {
  const auto items = static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n);
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * static_cast<std::int64_t>((1 + output_per_element(workload)) * sizeof(double)));
}

// A pasha map of the workload, the way a user writes it: a lambda over the input vector writing into
// an Array from the context.
void BM_Pasha(benchmark::State& state, std::string kind, Workload workload) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  try {
    Context& context = context_for(kind, workers);
    const std::vector<double>& in = input(n);
    Array<double> out = context.alloc<double>(n * output_per_element(workload), {.fill = 0.0});
    for (auto _ : state) {
      switch (workload) {
        case Workload::triple:
          context.map([&](int, std::size_t i, double value) { out[i] = 3 * value; }, in);
          break;
        case Workload::compute:
          context.map([&](int, std::size_t i, double value) { out[i] = compute_chain(value); }, in);
          break;
        case Workload::rows:
          context.map([&](int, std::size_t i, double value) { fill_row(value, out.data() + i * kRowLength); }, in);
          break;
      }
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  set_counters(state, workload, n);
}

using BaselineMap = void (*)(Workload, const double*, double*, std::size_t, int);

void BM_Baseline(benchmark::State& state, BaselineMap run, bool shared_output, Workload workload) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  const std::vector<double>& in = input(n);
  const std::size_t out_size = n * output_per_element(workload);
  // The fork loop needs shared output; allocated and filled once, as a hand-written program would.
  std::unique_ptr<SharedBuffer> shared;
  std::vector<double> heap;
  double* out = nullptr;
  if (shared_output) {
    shared = std::make_unique<SharedBuffer>(out_size);
    out = shared->data();
  } else {
    heap.resize(out_size);
    out = heap.data();
  }
  std::fill(out, out + out_size, 0.0);
  for (auto _ : state) {
    run(workload, in.data(), out, n, workers);
    benchmark::DoNotOptimize(out);
    benchmark::ClobberMemory();
  }
  set_counters(state, workload, n);
}

// Cost growing with the index, static shares against dynamic chunks.
void BM_Imbalanced(benchmark::State& state, std::string kind, Schedule schedule) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  constexpr std::size_t kMaxSteps = 4000;
  try {
    Context& context = context_for(kind, workers);
    Array<double> out = context.alloc<double>(n, {.fill = 0.0});
    for (auto _ : state) {
      context.map([&](int, std::size_t i, int) { out[i] = imbalanced(i, n, kMaxSteps); },
                  std::views::iota(0, static_cast<int>(n)), {.schedule = schedule, .chunk = 256});
      benchmark::ClobberMemory();
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// Latency of a map whose kernel does nothing, against the hand-written equivalent.
void BM_EmptyPasha(benchmark::State& state, std::string kind) {
  const int workers = static_cast<int>(state.range(1));
  const auto n = static_cast<std::size_t>(state.range(0));
  try {
    Context& context = context_for(kind, workers);
    for (auto _ : state) context.map([](int, std::size_t, int) {}, std::views::iota(0, static_cast<int>(n)));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void BM_EmptyOpenmp(benchmark::State& state) {
  for (auto _ : state) openmp_empty_region(static_cast<int>(state.range(1)));
}

void BM_EmptyFork(benchmark::State& state) {
  for (auto _ : state) fork_empty(static_cast<int>(state.range(1)));
}

// Worker counts swept for pasha's contexts: 1, 2, 4, ... up to the default worker count (at least 2).
std::vector<int> worker_counts() {
  const int cores = std::max(2, default_num_workers());
  std::vector<int> counts;
  for (int w = 1; w < cores; w *= 2) counts.push_back(w);
  counts.push_back(cores);
  return counts;
}

std::vector<std::size_t> sizes(Workload workload) {
  switch (workload) {
    case Workload::triple:
      return {1'000, 10'000, 100'000, 1'000'000, 10'000'000, 50'000'000, 100'000'000};
    case Workload::compute:
      return {1'000, 10'000, 100'000, 1'000'000, 10'000'000};
    case Workload::rows:
      return {1'000, 10'000, 100'000};
  }
  return {};
}

template <class... Args>
benchmark::internal::Benchmark* add(const std::string& name, Args&&... args) {
  return benchmark::RegisterBenchmark(name.c_str(), std::forward<Args>(args)...)
      ->ArgNames({"n", "workers"})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

void register_all() {
  const std::vector<int> counts = worker_counts();
  const int peers = counts.back();
  const std::pair<const char*, BaselineMap> peer_baselines[] = {
      {"openmp", openmp_map}, {"std_thread", std_thread_map}, {"fork_loop", fork_map},
      {"pipe", pipe_map},     {"socketpair", socketpair_map}, {"gather", gather_map},
  };
  for (Workload workload : {Workload::triple, Workload::compute, Workload::rows}) {
    const std::string suffix = std::string("/") + workload_name(workload);
    for (std::size_t n : sizes(workload)) {
      const auto size = static_cast<std::int64_t>(n);
      add("BM_serial" + suffix, BM_Pasha, std::string("serial"), workload)->Args({size, 1});
      for (const char* kind : {"threads", "processes"}) {
        for (int w : counts) add(std::string("BM_") + kind + suffix, BM_Pasha, std::string(kind), workload)->Args({size, w});
      }
      for (const auto& [name, run] : peer_baselines) {
        const bool shared_output = std::string(name) == "fork_loop";
        add(std::string("BM_") + name + suffix, BM_Baseline, run, shared_output, workload)->Args({size, peers});
      }
    }
  }
  for (const char* kind : {"threads", "processes"}) {
    add(std::string("BM_") + kind + "/imbalanced_static", BM_Imbalanced, std::string(kind), Schedule::static_shares)
        ->Args({100'000, 2});
    add(std::string("BM_") + kind + "/imbalanced_dynamic", BM_Imbalanced, std::string(kind), Schedule::dynamic)
        ->Args({100'000, 2});
  }
  add("BM_threads/empty", BM_EmptyPasha, std::string("threads"))->Args({1'000, 2});
  add("BM_openmp/empty", BM_EmptyOpenmp)->Args({0, 2});
  add("BM_processes/empty", BM_EmptyPasha, std::string("processes"))->Args({2, 2});
  add("BM_fork_loop/empty", BM_EmptyFork)->Args({0, 2});
}

}  // namespace
}  // namespace pasha::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  pasha::bench::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
