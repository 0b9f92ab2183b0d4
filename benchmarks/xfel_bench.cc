// Reading a European XFEL run with pasha: the sum of each train's camera pixels into a per-worker
// array, with each context. The run is generated once into a temporary directory.
//
//   tools/bazel run //benchmarks:xfel_bench
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <type_traits>

#include "contexts/process_context.h"
#include "contexts/serial_context.h"
#include "contexts/thread_context.h"
#include "functors/xfel/xfel.h"
#include "functors/xfel/testing/make_run.h"

namespace {

// The generated run, removed at exit.
class BenchRun {
 public:
  BenchRun() {
    char pattern[] = "/tmp/pasha_xfel_bench_XXXXXX";
    if (::mkdtemp(pattern) == nullptr) std::abort();
    dir_ = pattern;
    spec_.num_trains = 400;
    spec_.da_trains_per_file = 100;
    spec_.det_trains_per_file = 150;
    spec_.image_height = 256;
    spec_.image_width = 256;
    pasha::xfel::mock::write_run(dir_, spec_);
  }
  ~BenchRun() { std::filesystem::remove_all(dir_); }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  pasha::xfel::mock::RunSpec spec_;
};

const BenchRun& bench_run() {
  static const BenchRun run;
  return run;
}

template <class Context>
std::unique_ptr<pasha::Context> make_context(int workers) {
  if constexpr (std::is_same_v<Context, pasha::SerialContext>) {
    (void)workers;
    return std::make_unique<pasha::SerialContext>();
  } else {
    return std::make_unique<Context>(workers);
  }
}

template <class Context>
void BM_XfelPixelSumPerTrain(benchmark::State& state) {
  std::unique_ptr<pasha::Context> ctx;
  try {
    ctx = make_context<Context>(static_cast<int>(state.range(0)));
  } catch (const std::exception& error) {
    state.SkipWithError(error.what());
    return;
  }
  const auto run = pasha::xfel::RunDirectory(bench_run().dir());
  const auto kd = run.key_data<std::uint16_t>(pasha::xfel::mock::kCameraOutput, "data.image.pixels");
  auto sums = ctx->alloc<std::uint64_t>(1, {.fill = 0, .per_worker = true});
  const std::uint64_t bytes = kd.shape().num_elements() * sizeof(std::uint16_t);
  for (auto _ : state) {
    ctx->map(
        [&](int worker_id, std::size_t, std::uint64_t, pasha::Array<std::uint16_t> rows) {
          std::uint64_t sum = 0;
          const std::uint16_t* p = rows.data();
          for (std::size_t i = 0, n = rows.size(); i < n; ++i) sum += p[i];
          sums(worker_id, 0) += sum;
        },
        kd);
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kd.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

BENCHMARK_TEMPLATE(BM_XfelPixelSumPerTrain, pasha::SerialContext)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_XfelPixelSumPerTrain, pasha::ThreadContext)
    ->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_XfelPixelSumPerTrain, pasha::ProcessContext)
    ->Arg(1)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
