// map_bench: which pasha context and how many workers to use on this machine, what zero-copy results
// are worth, and what starting worker processes costs. The main job, `tools/bazel run
// //benchmarks:map_bench`, runs this binary through tools/tune.py, which prints the answer.
//
//   map_bench_bin [--sweep=default|full] [--fork_scaling_ballast_mb=MB] [Google Benchmark flags]
//
// Without --fork_scaling_ballast_mb it runs the tuning benchmarks (contexts, peers and IPC baselines
// over sizes); with it, the fork-scaling benchmarks, the process holding MB MiB of ballast (allocated
// and touched once, before any benchmark) the whole time. tools/tune.py runs the tuning part and the
// fork-scaling part for 0, 1024 and 2048 MiB. The default sweep takes about three minutes on a 2-core
// machine; --sweep=full adds sizes up to 10^8, the rows workload, every IPC baseline at every size, the
// triple kernel's fork scaling at every ballast, and pasha's own sequential fork mode.
//
// Benchmark names: BM_<implementation>/<workload>/n:<elements>/workers:<count>, where implementation is
//   serial, threads, processes           pasha's contexts, writing into arrays from ctx.alloc (zero-copy)
//   processes_sequential                 pasha's processes, every worker forked by the caller
//   openmp, std_thread, fork_loop        hand-written peers (fork_loop writes into a MAP_SHARED buffer)
//   pipe, socketpair, gather             copy-based IPC: results sent back, or gathered and copied
// and workload is triple (out[i] = 3 * in[i]), compute (a chain of 32 multiply-adds), rows (4 KiB of
// output per element), imbalanced_static / imbalanced_dynamic (cost grows with the index), empty (a
// map whose kernel does nothing), or fork_empty / fork_triple (the cost of starting workers from a
// parent of ballast_mb MiB: BM_<impl>/<workload>/ballast_mb:<mb>/workers:<count>). Every benchmark
// uses real time, since the work happens in other threads and processes.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
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
  if (!context) {
    if (kind == "processes_sequential") {
      context = std::make_shared<ProcessContext>(workers, Binding::compact, ForkMode::sequential);
    } else {
      context = make_context(kind, kind == "serial" ? std::optional<int>() : std::optional<int>(workers));
    }
  }
  return *context;
}

// Reaps the workers a process map left exiting, outside the timed region: a map's latency is from
// its call to its return.
void settle(Context& context) {
  if (auto* processes = dynamic_cast<ProcessContext*>(&context)) processes->wait_for_exited_workers();
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

// Memory the parent holds while workers start, for the whole run: allocated and touched once.
std::size_t hold_ballast(std::size_t megabytes) {
  static std::vector<char> ballast;
  ballast = std::vector<char>(megabytes << 20);
  for (std::size_t i = 0; i < ballast.size(); i += 4096) ballast[i] = 1;
  benchmark::DoNotOptimize(ballast.data());
  return megabytes;
}

void set_counters(benchmark::State& state, Workload workload, std::size_t n) {
  const auto items = static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(n);
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * static_cast<std::int64_t>((1 + output_per_element(workload)) * sizeof(double)));
}

// A pasha map of the workload, the way a user writes it: a lambda over the input vector writing into
// an Array from the context.
void run_pasha(Context& context, Workload workload, const std::vector<double>& in, Array<double>& out) {
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
}

void BM_Pasha(benchmark::State& state, std::string kind, Workload workload) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  try {
    Context& context = context_for(kind, workers);
    const std::vector<double>& in = input(n);
    Array<double> out = context.alloc<double>(n * output_per_element(workload), {.fill = 0.0});
    for (auto _ : state) {
      run_pasha(context, workload, in, out);
      benchmark::DoNotOptimize(out.data());
      benchmark::ClobberMemory();
    }
    settle(context);
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
    settle(context);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// Latency of a map whose kernel does nothing, over n elements (n = 0: no element at all).
void BM_EmptyPasha(benchmark::State& state, std::string kind) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  try {
    Context& context = context_for(kind, workers);
    for (auto _ : state) {
      context.map([](int, std::size_t, int) {}, std::views::iota(0, static_cast<int>(n)));
      state.PauseTiming();
      settle(context);
      state.ResumeTiming();
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// The same with OpenMP: an empty parallel region (n = 0), or a parallel for of n empty iterations.
void BM_EmptyOpenmp(benchmark::State& state) {
  for (auto _ : state) openmp_empty(static_cast<std::size_t>(state.range(0)), static_cast<int>(state.range(1)));
}

// The same with a fork loop: `workers` children that do nothing, waited for.
void BM_EmptyForkLoop(benchmark::State& state) {
  for (auto _ : state) fork_empty(static_cast<int>(state.range(1)));
}

// Starting workers from a parent holding `ballast_mb` MiB: a process map of the empty or triple
// kernel (1e6 elements), from its call to its return (the workers' exits are reaped outside the
// timed region, as the next map would), against the hand-written fork loop (fork, run, waitpid).
constexpr std::size_t kForkTripleElements = 1'000'000;

void BM_ForkPasha(benchmark::State& state, std::string kind, bool triple) {
  const int workers = static_cast<int>(state.range(1));
  try {
    Context& context = context_for(kind, workers);
    const std::size_t n = triple ? kForkTripleElements : static_cast<std::size_t>(workers);
    const std::vector<double>& in = input(n);
    Array<double> out = context.alloc<double>(n, {.fill = 0.0});
    for (auto _ : state) {
      if (triple) {
        context.map([&](int, std::size_t i, double value) { out[i] = 3 * value; }, in);
      } else {
        context.map([](int, std::size_t, double) {}, in);
      }
      state.PauseTiming();
      settle(context);
      state.ResumeTiming();
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void BM_ForkLoop(benchmark::State& state, bool triple) {
  const int workers = static_cast<int>(state.range(1));
  const std::size_t n = triple ? kForkTripleElements : 0;
  const std::vector<double>& in = input(std::max<std::size_t>(n, 1));
  SharedBuffer out(std::max<std::size_t>(n, 1));
  for (auto _ : state) {
    if (triple) {
      fork_map(Workload::triple, in.data(), out.data(), n, workers);
    } else {
      fork_empty(workers);
    }
    benchmark::ClobberMemory();
  }
}

// Worker counts swept for pasha's contexts: 1, 2, 4, ... up to the default worker count (at least 2).
std::vector<int> worker_counts() {
  const int cores = std::max(2, default_num_workers());
  std::vector<int> counts;
  for (int w = 1; w < cores; w *= 2) counts.push_back(w);
  counts.push_back(cores);
  return counts;
}

struct Sweep {
  bool full = false;

  std::vector<std::size_t> sizes(Workload workload) const {
    switch (workload) {
      case Workload::triple:
        if (full) return {1'000, 10'000, 100'000, 1'000'000, 10'000'000, 50'000'000, 100'000'000};
        return {1'000, 10'000, 100'000, 1'000'000, 10'000'000, 50'000'000};
      case Workload::compute:
        return {1'000, 10'000, 100'000, 1'000'000, 10'000'000};
      case Workload::rows:
        return {1'000, 10'000, 100'000};
    }
    return {};
  }
  std::vector<Workload> workloads() const {
    if (full) return {Workload::triple, Workload::compute, Workload::rows};
    return {Workload::triple, Workload::compute};
  }
  // Copy-based IPC baselines: at every size in the full sweep, from 10^6 on by default.
  bool with_ipc(std::size_t n) const { return full || (n >= 1'000'000 && n <= 10'000'000); }
  std::vector<std::int64_t> fork_workers() const { return {1, 2, 4, 8, 16, 32}; }
  // The triple kernel's fork scaling: every ballast in the full sweep, the largest by default.
  bool with_fork_triple(std::int64_t ballast) const { return full || ballast == 2048; }
};

template <class... Args>
benchmark::internal::Benchmark* add(const std::string& name, Args&&... args) {
  return benchmark::RegisterBenchmark(name.c_str(), std::forward<Args>(args)...)
      ->ArgNames({"n", "workers"})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

void register_tuning(const Sweep& sweep) {
  const std::vector<int> counts = worker_counts();
  const int peers = counts.back();
  const std::pair<const char*, BaselineMap> peer_baselines[] = {
      {"openmp", openmp_map}, {"std_thread", std_thread_map}, {"fork_loop", fork_map}};
  const std::pair<const char*, BaselineMap> ipc_baselines[] = {
      {"pipe", pipe_map}, {"socketpair", socketpair_map}, {"gather", gather_map}};
  for (Workload workload : sweep.workloads()) {
    const std::string suffix = std::string("/") + workload_name(workload);
    for (std::size_t n : sweep.sizes(workload)) {
      const auto size = static_cast<std::int64_t>(n);
      add("BM_serial" + suffix, BM_Pasha, std::string("serial"), workload)->Args({size, 1});
      for (const char* kind : {"threads", "processes"}) {
        for (int w : counts) add(std::string("BM_") + kind + suffix, BM_Pasha, std::string(kind), workload)->Args({size, w});
      }
      for (const auto& [name, run] : peer_baselines) {
        const bool shared_output = std::string(name) == "fork_loop";
        add(std::string("BM_") + name + suffix, BM_Baseline, run, shared_output, workload)->Args({size, peers});
      }
      if (!sweep.with_ipc(n)) continue;
      for (const auto& [name, run] : ipc_baselines) {
        add(std::string("BM_") + name + suffix, BM_Baseline, run, false, workload)->Args({size, peers});
      }
    }
  }
  for (const char* kind : {"threads", "processes"}) {
    add(std::string("BM_") + kind + "/imbalanced_static", BM_Imbalanced, std::string(kind), Schedule::static_shares)
        ->Args({100'000, 2});
    add(std::string("BM_") + kind + "/imbalanced_dynamic", BM_Imbalanced, std::string(kind), Schedule::dynamic)
        ->Args({100'000, 2});
  }
  for (const std::int64_t n : {0, 1000}) {
    add("BM_threads/empty", BM_EmptyPasha, std::string("threads"))->Args({n, peers});
    add("BM_openmp/empty", BM_EmptyOpenmp)->Args({n, peers});
  }
  add("BM_processes/empty", BM_EmptyPasha, std::string("processes"))->Args({peers, peers});
  add("BM_fork_loop/empty", BM_EmptyForkLoop)->Args({peers, peers});
}

void register_fork_scaling(const Sweep& sweep, std::int64_t ballast_mb) {
  for (const bool triple : {false, true}) {
    if (triple && !sweep.with_fork_triple(ballast_mb)) continue;
    const std::string workload = triple ? "/fork_triple" : "/fork_empty";
    for (const std::int64_t w : sweep.fork_workers()) {
      const auto fork_args = [&](benchmark::internal::Benchmark* b) {
        b->ArgNames({"ballast_mb", "workers"})->Args({ballast_mb, w})->Unit(benchmark::kMillisecond);
      };
      fork_args(add("BM_processes" + workload, BM_ForkPasha, std::string("processes"), triple));
      if (sweep.full) {
        fork_args(add("BM_processes_sequential" + workload, BM_ForkPasha, std::string("processes_sequential"), triple));
      }
      fork_args(add("BM_fork_loop" + workload, BM_ForkLoop, triple));
    }
  }
}

struct Flags {
  Sweep sweep;
  std::optional<std::int64_t> fork_scaling_ballast_mb;
};

// Takes --sweep=default|full and --fork_scaling_ballast_mb=MB out of argv; the rest is Google
// Benchmark's.
Flags parse_flags(int& argc, char** argv) {
  Flags flags;
  constexpr std::string_view kBallast = "--fork_scaling_ballast_mb=";
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--sweep=full") {
      flags.sweep.full = true;
    } else if (arg.starts_with(kBallast)) {
      flags.fork_scaling_ballast_mb = std::stoll(std::string(arg.substr(kBallast.size())));
    } else if (arg != "--sweep=default") {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return flags;
}

}  // namespace
}  // namespace pasha::bench

int main(int argc, char** argv) {
  const pasha::bench::Flags flags = pasha::bench::parse_flags(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (flags.fork_scaling_ballast_mb) {
    pasha::bench::hold_ballast(static_cast<std::size_t>(*flags.fork_scaling_ballast_mb));
    pasha::bench::register_fork_scaling(flags.sweep, *flags.fork_scaling_ballast_mb);
  } else {
    pasha::bench::register_tuning(flags.sweep);
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
