// The conformance suite, part three: what threads a kernel starts, handles that were moved from and
// hooks that fail must not break, in any context.
#include <gmock/gmock.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <numeric>
#include <ranges>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "conformance/conformance.h"
#include "functors/ndarray/ndarray.h"
#include "functors/sequence/sequence.h"
#include "pasha/core/array.h"
#include "pasha/core/context.h"
#include "pasha/core/errors.h"
#include "pasha/core/helpers.h"
#include "pasha/core/hooks.h"

namespace pasha::conformance {
namespace {

using ::testing::HasSubstr;

// --- Maps from threads a kernel started -----------------------------------------------------------

// Every worker's kernel starts a thread (as std::async, OpenMP or a library's pool would) that maps on
// the context running the kernel, and waits for it. The inner maps run, each as one of the outer
// map's workers; nothing hangs.
TEST_P(ContextConformance, AMapFromAThreadAKernelStartedRunsAsOneOfTheMapsWorkers) {
  const int n = context().num_workers();
  auto inner_visits = context().alloc<int>({static_cast<std::size_t>(n), 10}, {.fill = 0});
  auto inner_workers = context().alloc<int>({static_cast<std::size_t>(n), 10}, {.fill = -1});
  context().map(
      [&](int, std::size_t outer, int) {
        std::async(std::launch::async, [&] {
          context().map(
              [&](int worker, std::size_t inner, int) {
                inner_visits(outer, inner) += 1;
                inner_workers(outer, inner) = worker;
              },
              std::views::iota(0, 10));
        }).get();
      },
      std::views::iota(0, n));
  for (std::size_t outer = 0; outer < static_cast<std::size_t>(n); ++outer) {
    for (std::size_t inner = 0; inner < 10; ++inner) {
      EXPECT_EQ(inner_visits(outer, inner), 1) << outer << ", " << inner;
      EXPECT_GE(inner_workers(outer, inner), 0);
      EXPECT_LT(inner_workers(outer, inner), n);
    }
  }
}

TEST_P(ContextConformance, AMapFromAThreadAKernelWaitsForByPollingRunsToo) {
  auto visits = context().alloc<int>(5, {.fill = 0});
  context().map(
      [&](int, std::size_t, int) {
        auto inner = std::async(std::launch::async, [&] {
          context().map([&](int, std::size_t i, int) { std::atomic_ref<int>(visits[i]).fetch_add(1); },
                        std::views::iota(0, 5));
        });
        while (inner.wait_for(std::chrono::milliseconds(20)) != std::future_status::ready) {
        }
      },
      std::views::iota(0, 1));
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(visits[i], 1) << i;
}

TEST_P(ContextConformance, ThreadsOfSeveralKernelsRunInlineEachAsAWorkerOfItsOwnWithThatId) {
  const int n = context().num_workers();
  // [w]: the id the inline map's kernel got; [n + w]: this_worker_id() there; [2n + w]: how many
  // inline kernels ran at once at most.
  auto seen = context().alloc<int>(3 * static_cast<std::size_t>(n), {.fill = -1});
  auto running = context().alloc<int>(1, {.fill = 0});
  auto most = context().alloc<int>(1, {.fill = 0});
  context().map(
      [&](int w, std::size_t, int) {
        std::async(std::launch::async, [&, w] {
          context().map(
              [&](int inner_worker, std::size_t, int) {
                const int now = std::atomic_ref<int>(running[0]).fetch_add(1) + 1;
                std::atomic_ref<int> peak(most[0]);
                for (int old = peak.load(); now > old && !peak.compare_exchange_weak(old, now);) {
                }
                seen[static_cast<std::size_t>(w)] = inner_worker;
                seen[static_cast<std::size_t>(n + w)] = this_worker_id();
                // Every kernel's inline map is in at once: they overlap (the deadline only reports a hang).
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
                while (std::atomic_ref<int>(most[0]).load() < n && std::chrono::steady_clock::now() < deadline) {
                  std::this_thread::yield();
                }
              },
              std::views::iota(0, 1));
        }).get();
      },
      std::views::iota(0, n));
  EXPECT_EQ(most[0], n) << "the inline maps of the kernels' threads did not all run at once";
  std::vector<int> ids;
  for (int w = 0; w < n; ++w) {
    ids.push_back(seen[static_cast<std::size_t>(w)]);
    EXPECT_GE(ids.back(), 0);
    EXPECT_LT(ids.back(), n);
    EXPECT_EQ(seen[static_cast<std::size_t>(n + w)], ids.back()) << "this_worker_id() inside the inline kernel";
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end()) << "two overlapping inline maps had one id";
}

TEST_P(ContextConformance, AddingAHookFromAThreadAKernelWaitsForIsALogicErrorNotAHang) {
  auto refused = context().alloc<int>(1, {.fill = 0});
  context().map(
      [&](int, std::size_t, int) {
        std::async(std::launch::async, [&] {
          try {
            context().add_hook(std::make_shared<MapHook>());
          } catch (const std::logic_error&) {
            refused[0] = 1;
          }
        }).get();
      },
      std::views::iota(0, 1));
  EXPECT_EQ(refused[0], 1);
}

// Throws once it has been called after `after`.
struct InterruptAfter {
  std::chrono::steady_clock::time_point when;
  void operator()() const {
    if (std::chrono::steady_clock::now() >= when) throw std::range_error("interrupted");
  }
};

TEST_P(ContextConformance, AnInterruptCheckThatThrowsStopsTheMapSoonAndItsExceptionIsThrown) {
  // 2000 elements of 2 ms per worker (4 s); the check throws after 100 ms.
  const auto start = std::chrono::steady_clock::now();
  auto done = context().alloc<std::int64_t>({}, {.fill = 0, .per_worker = true});
  try {
    context().map(
        [&](int w, std::size_t, int) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          done[static_cast<std::size_t>(w)] += 1;
        },
        std::views::iota(0, 2000 * context().num_workers()),
        {.interrupt_check = InterruptAfter{start + std::chrono::milliseconds(100)}});
    ADD_FAILURE() << "no exception";
  } catch (const std::range_error&) {
  } catch (const WorkerError& e) {
    // Several callers (MPI ranks): one whose own check did not throw hears of another's as a failure.
    EXPECT_GT(context().num_callers(), 1) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_LT(std::accumulate(done.begin(), done.end(), std::int64_t{0}), 2000 * context().num_workers());
  context().map([](int, std::size_t, int) {}, std::views::iota(0, 10));  // usable again
}

TEST_P(ContextConformance, AnExceptionInAMapFromAThreadAKernelStartedReachesThatKernel) {
  auto caught = context().alloc<int>({}, {.fill = 0});
  context().map(
      [&](int, std::size_t, int) {
        try {
          std::async(std::launch::async, [&] {
            context().map([](int, std::size_t, int) { throw std::runtime_error("inner"); }, std::views::iota(0, 3));
          }).get();
        } catch (const std::runtime_error& e) {
          if (std::string(e.what()) == "inner") *caught.data() = 1;
        }
      },
      std::views::iota(0, 1));
  EXPECT_EQ(*caught.data(), 1);
}

// --- Handles that were moved from ----------------------------------------------------------------

TEST_P(ContextConformance, AMovedFromArrayIsEmptyAndMapsToNothing) {
  Array<double> a = context().alloc<double>(1000, {.fill = 1.0});
  Array<double> b = std::move(a);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.data(), nullptr);
  b = Array<double>();  // the memory goes with the last real handle
  auto calls = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  context().map([&](int w, std::size_t, double) { calls[static_cast<std::size_t>(w)] += 1; }, a);
  EXPECT_EQ(std::accumulate(calls.begin(), calls.end(), 0), 0);
}

// --- Hooks that fail after the workers ----------------------------------------------------------

// A context hook whose post_map throws the first time it runs.
class FailingPostMapOnce : public MapHook {
 public:
  void post_map(Context&) override {
    if (!failed_.exchange(true)) throw std::runtime_error("post_map failed");
  }

 private:
  std::atomic<bool> failed_{false};
};

TEST_P(SingleCallerConformance, AMapWhosePostMapHookFailsLeavesAReductionAsItWas) {
  context().add_hook(std::make_shared<FailingPostMapOnce>());
  double total = 5.0;
  const auto sum = with_reduction(context(), total, 0.0, std::plus<>(),
                                  [](int, std::size_t, int v, double& partial) { partial += v; });
  EXPECT_THROW(context().map(sum, std::views::iota(0, 100)), std::runtime_error);
  EXPECT_EQ(total, 5.0) << "the failed map combined its partials";
  context().map(sum, std::views::iota(0, 100));  // the retry counts each element once
  EXPECT_EQ(total, 5.0 + 4950.0);
}

TEST_P(SingleCallerConformance, AMapWhosePostMapHookFailsLeavesLocalCopiesUncombined) {
  context().add_hook(std::make_shared<FailingPostMapOnce>());
  auto histogram = context().alloc<long>(4, {.fill = 0});
  const auto count = with_local_copies(context(), histogram, std::plus<>(),
                                       [](int, std::size_t, int v, Array<long> mine) { mine[static_cast<std::size_t>(v) % 4] += 1; });
  EXPECT_THROW(context().map(count, std::views::iota(0, 40)), std::runtime_error);
  for (std::size_t b = 0; b < 4; ++b) EXPECT_EQ(histogram[b], 0) << "bin " << b;
  context().map(count, std::views::iota(0, 40));
  for (std::size_t b = 0; b < 4; ++b) EXPECT_EQ(histogram[b], 10) << "bin " << b;
}

TEST_P(SingleCallerConformance, AReductionWhoseOperationThrowsLeavesEveryResultAsItWas) {
  // Two helpers, nested: the inner one combines, then the outer one's operation throws. Neither
  // result may change.
  double inner_total = 1.0;
  auto outer_result = context().alloc<double>(1, {.fill = 2.0});
  const auto throwing_plus = [](double a, double b) -> double {
    if (b > 0) throw std::runtime_error("cannot combine");
    return a + b;
  };
  EXPECT_THROW(context().map(with_reduction(context(), outer_result, 0.0, throwing_plus,
                                            with_reduction(context(), inner_total, 0.0, std::plus<>(),
                                                           [](int, std::size_t, int v, Array<double> outer,
                                                              double& inner) {
                                                             outer[0] += v;
                                                             inner += v;
                                                           })),
                             std::views::iota(1, 11)),
               std::runtime_error);
  EXPECT_EQ(inner_total, 1.0);
  EXPECT_EQ(outer_result[0], 2.0);
}

TEST_P(SingleCallerConformance, NestedReductionsIntoOneResultAddUp) {
  double total = 0;
  context().map(with_reduction(context(), total, 0.0, std::plus<>(),
                               with_reduction(context(), total, 0.0, std::plus<>(),
                                              [](int, std::size_t, int v, double& outer, double& inner) {
                                                outer += v;
                                                inner += v;
                                              })),
                std::views::iota(1, 11));
  EXPECT_EQ(total, 110.0);
}

TEST_P(SingleCallerConformance, AHelperThatOutlivesItsContextIsRefusedByAnotherWithoutTouchingTheOld) {
  double total = 0;
  std::shared_ptr<Context> gone = GetParam()();
  auto sum = with_reduction(*gone, total, 0.0, std::plus<>(), [](int, std::size_t, int v, double& p) { p += v; });
  gone.reset();
  try {
    context().map(sum, std::views::iota(0, 10));
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("made for another context object"));
  }
}

TEST_P(SingleCallerConformance, AHelperThatWasMovedFromStillWorks) {
  double total = 0;
  auto sum = with_reduction(context(), total, 0.0, std::plus<>(), [](int, std::size_t, int v, double& p) { p += v; });
  auto moved_to = std::move(sum);
  context().map(sum, std::views::iota(0, 10));  // NOLINT: use after move, on purpose
  context().map(moved_to, std::views::iota(0, 10));
  EXPECT_EQ(total, 90.0);
}

// --- Hooks added while maps run -------------------------------------------------------------------

class AddsAHookInPreMap : public MapHook {
 public:
  void pre_map(Context& context) override {
    try {
      context.add_hook(std::make_shared<MapHook>());
    } catch (const std::logic_error& e) {
      refused = e.what();
    }
  }
  std::string refused;
};

TEST_P(SingleCallerConformance, AddingAHookFromInsideAMapOfTheSameContextIsALogicError) {
  auto hook = std::make_shared<AddsAHookInPreMap>();
  context().add_hook(hook);
  context().map([](int, std::size_t, int) {}, std::views::iota(0, 3));
  EXPECT_THAT(hook->refused, HasSubstr("add_hook from inside a map of the same context"));
}

}  // namespace
}  // namespace pasha::conformance

namespace pasha::conformance {
namespace {

// Maps of one context from two threads of the caller take turns, however long their kernels block: a
// worker id never belongs to two running kernels (per-worker arrays and reductions rely on it).
TEST_P(SingleCallerConformance, MapsFromTwoThreadsNeverRunTwoKernelsUnderOneWorkerIdWhateverTheyWaitFor) {
  const int n = context().num_workers();
  auto running = context().alloc<int>({}, {.fill = 0, .per_worker = true});  // kernels running as each worker
  auto most = context().alloc<int>(1, {.fill = 0});
  const auto kernel = [&](int w, std::size_t, int) {
    const int now = std::atomic_ref<int>(running[static_cast<std::size_t>(w)]).fetch_add(1) + 1;
    std::atomic_ref<int> peak(most[0]);
    for (int old = peak.load(); now > old && !peak.compare_exchange_weak(old, now);) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // blocked, as on a slow file
    std::atomic_ref<int>(running[static_cast<std::size_t>(w)]).fetch_sub(1);
  };
  std::thread other([&] { context().map(kernel, std::views::iota(0, n)); });
  context().map(kernel, std::views::iota(0, n));
  other.join();
  EXPECT_EQ(most[0], 1) << "two kernels ran at once under one worker id";
}

}  // namespace
}  // namespace pasha::conformance

namespace pasha::conformance {
namespace {

// Maps from several threads take turns in the order they asked: a thread mapping in a loop lets
// another thread's map run after the map it is running and at most one more that asked before it.
TEST_P(SingleCallerConformance, AThreadMappingInALoopCannotKeepAnotherFromItsTurn) {
  const int n = context().num_workers();
  std::atomic<int> loop_maps{0};
  std::atomic<bool> stop{false};
  std::thread looping([&] {
    while (!stop.load()) {
      context().map([](int, std::size_t, int) { std::this_thread::sleep_for(std::chrono::milliseconds(5)); },
                    std::views::iota(0, n));
      loop_maps.fetch_add(1);
    }
  });
  while (loop_maps.load() < 2) std::this_thread::yield();
  int most_waited = 0;
  auto ran_at = context().alloc<int>(1, {.fill = -1});  // the loop's count when our kernel ran
  for (int round = 0; round < 5; ++round) {
    const int asked_at = loop_maps.load();
    context().map([&](int, std::size_t, int) { ran_at[0] = loop_maps.load(); }, std::views::iota(0, 1));
    ASSERT_GE(ran_at[0], asked_at);
    most_waited = std::max(most_waited, ran_at[0] - asked_at);
  }
  stop.store(true);
  looping.join();
  EXPECT_LE(most_waited, 2) << "the looping thread's maps went first, again and again";
}

}  // namespace
}  // namespace pasha::conformance
