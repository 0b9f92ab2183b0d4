// The conformance suite, part two: the idioms of EXtra-pasha's users (pasha/core/helpers.h, named axes,
// alloc_like of anything array-like, progress reports), in every context.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <numeric>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "conformance/conformance.h"
#include "functors/ndarray/ndarray.h"
#include "functors/sequence/sequence.h"
#include "pasha/core/array.h"
#include "pasha/core/context.h"
#include "pasha/core/errors.h"
#include "pasha/core/helpers.h"

namespace pasha::conformance {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::size_t> ShapeOf(const auto& array) { return {array.shape().begin(), array.shape().end()}; }

std::vector<std::string> NamesOf(const auto& array) {
  std::vector<std::string> names;
  for (std::size_t a = 0; a < array.ndim(); ++a) names.emplace_back(array.axis_name(a));
  return names;
}

// Contexts whose map is called by several processes at once (MPI ranks) have no single caller to
// combine a helper's partials; there the helpers must refuse, and say why.
bool OneCaller(Context& context) { return context.num_callers() == 1; }

// --- Helpers for one map (pasha/core/helpers.h) ---------------------------------------------------------

TEST_P(ContextConformance, WithInitRunsInEachWorkerThatGetsWorkBeforeItsFirstElement) {
  const int n = context().num_workers();
  auto inits = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  auto elements_before_init = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  auto seen = context().alloc<int>(100, {.fill = 0});
  context().map(with_init([&](int w) { inits[static_cast<std::size_t>(w)] += 1; },
                          [&](int w, std::size_t i, int) {
                            if (inits[static_cast<std::size_t>(w)] == 0) elements_before_init[static_cast<std::size_t>(w)] += 1;
                            seen[i] += 1;
                          }),
                std::views::iota(0, 100));
  for (int w = 0; w < n; ++w) {
    EXPECT_EQ(inits[static_cast<std::size_t>(w)], 1) << "worker " << w;
    EXPECT_EQ(elements_before_init[static_cast<std::size_t>(w)], 0) << "worker " << w;
  }
  for (std::size_t i = 0; i < 100; ++i) ASSERT_EQ(seen[i], 1);
  // It applies to that map only: a later map of the context runs no init.
  context().map([&](int, std::size_t, int) {}, std::views::iota(0, 100));
  EXPECT_EQ(std::accumulate(inits.begin(), inits.end(), 0), n);
}

TEST_P(ContextConformance, WithFinalizeRunsAfterEachWorkersLastElementAndWhenTheMapFails) {
  const int n = context().num_workers();
  auto elements = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  auto elements_at_finalize = context().alloc<int>({}, {.fill = -1, .per_worker = true});
  context().map(with_finalize([&](int w, std::size_t, int) { elements[static_cast<std::size_t>(w)] += 1; },
                              [&](int w) { elements_at_finalize[static_cast<std::size_t>(w)] = elements[static_cast<std::size_t>(w)]; }),
                std::views::iota(0, 10 * n));
  for (int w = 0; w < n; ++w) EXPECT_EQ(elements_at_finalize[static_cast<std::size_t>(w)], 10) << "worker " << w;

  auto finalized = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  EXPECT_THROW(context().map(with_finalize([&](int, std::size_t i, int) {
                                             if (i == 0) throw std::runtime_error("first element");
                                           },
                                           [&](int w) { finalized[static_cast<std::size_t>(w)] = 1; }),
                             std::views::iota(0, 10 * n)),
               WorkerError);
  EXPECT_EQ(finalized[0], 1) << "the failed worker was not finalized";
}

TEST_P(ContextConformance, WithLocalCopiesGivesEachWorkerACopyOfTheArrayAndCombinesThemAfterTheMap) {
  auto histogram = context().alloc<std::uint64_t>(8, {.fill = 0});
  std::vector<int> values(1000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<int>(i % 8);
  const auto count = with_local_copies(context(), histogram, std::plus<>(),
                                       [&](int, std::size_t, int v, Array<std::uint64_t> mine) {
                                         mine[static_cast<std::size_t>(v)] += 1;
                                       });
  if (!OneCaller(context())) {
    EXPECT_THROW(context().map(count, values), std::invalid_argument);
    return;
  }
  context().map(count, values);
  for (std::size_t b = 0; b < 8; ++b) EXPECT_EQ(histogram[b], 125u) << "bin " << b;

  // Copies start equal to the array: the kernel reads it, and combine decides what comes back.
  auto best = context().alloc<double>({2}, {.fill = 10.0});
  context().map(with_local_copies(context(), best, [](double a, double b) { return std::max(a, b); },
                                  [&](int, std::size_t i, int, Array<double> mine) {
                                    if (mine[0] != 10.0 && mine[0] < 11.0) mine[1] = -1;  // never: copies start at 10
                                    mine[0] = std::max(mine[0], static_cast<double>(i));
                                  }),
                std::views::iota(0, 50));
  EXPECT_EQ(best[0], 49.0);
  EXPECT_EQ(best[1], 10.0);
}

TEST_P(ContextConformance, WithReductionFoldsEachWorkersPartialIntoTheResultWithTheUsersOperation) {
  const std::vector<double> values = [] {
    std::vector<double> v(1001);
    std::iota(v.begin(), v.end(), 0.0);
    return v;
  }();
  double total = 0.5;
  const auto sum = with_reduction(context(), total, 0.0, std::plus<>(),
                                  [&](int, std::size_t, double v, double& partial) { partial += v; });
  if (!OneCaller(context())) {
    EXPECT_THROW(context().map(sum, values), std::invalid_argument);
    return;
  }
  context().map(sum, values);
  EXPECT_EQ(total, 0.5 + 500500.0) << "the result's own value takes part, as in OpenMP";

  // An array result, another operation, a generic kernel.
  auto lowest = context().alloc<double>({2}, {.fill = 1e9});
  context().map(with_reduction(context(), lowest, 1e300, [](double a, double b) { return std::min(a, b); },
                               [&](int, std::size_t i, auto v, auto partial) {
                                 partial[i % 2] = std::min<double>(partial[i % 2], v);
                               }),
                values);
  EXPECT_EQ(lowest[0], 0.0);
  EXPECT_EQ(lowest[1], 1.0);
}

TEST_P(SingleCallerConformance, HelpersLeaveTheResultAsItWasWhenTheMapFails) {
  double total = 7.0;
  EXPECT_THROW(context().map(with_reduction(context(), total, 0.0, std::plus<>(),
                                            [&](int, std::size_t i, int, double& partial) {
                                              partial += 1;
                                              if (i == 3) throw std::runtime_error("bad element");
                                            }),
                             std::views::iota(0, 100)),
               WorkerError);
  EXPECT_EQ(total, 7.0);
}

TEST_P(SingleCallerConformance, HelpersNestAndEachRunsItsPart) {
  auto started = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  auto stopped = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  std::int64_t total = 0;
  context().map(with_init([&](int w) { started[static_cast<std::size_t>(w)] = 1; },
                          with_finalize(with_reduction(context(), total, std::int64_t{0}, std::plus<>(),
                                                       [&](int, std::size_t, int v, std::int64_t& partial) { partial += v; }),
                                        [&](int w) { stopped[static_cast<std::size_t>(w)] = 1; })),
                std::views::iota(1, 101));
  EXPECT_EQ(total, 5050);
  EXPECT_EQ(std::accumulate(started.begin(), started.end(), 0), std::min(context().num_workers(), 100));
  EXPECT_EQ(std::accumulate(stopped.begin(), stopped.end(), 0), std::min(context().num_workers(), 100));
}

TEST_P(ContextConformance, NestedHelpersSetUpOuterFirstAndTearDownInnerFirst) {
  const int n = context().num_workers();
  // opened[w]: 1 once worker w's open returned; closed_unopened[w]: close ran where open had not.
  auto opened = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  auto closed_unopened = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  auto closed = context().alloc<int>({}, {.fill = 0, .per_worker = true});
  const auto open = [&](int w) {
    if (w == 0) throw std::runtime_error("cannot open");
    opened[static_cast<std::size_t>(w)] = 1;
  };
  const auto close = [&](int w) {
    if (opened[static_cast<std::size_t>(w)] == 0) closed_unopened[static_cast<std::size_t>(w)] = 1;
    closed[static_cast<std::size_t>(w)] = 1;
  };
  EXPECT_THROW(context().map(with_init(open, with_finalize([](int, std::size_t, int) {}, close)),
                             std::views::iota(0, 10 * n)),
               WorkerError);
  EXPECT_EQ(closed[0], 0) << "close ran for the worker whose open threw";
  for (int w = 0; w < n; ++w) EXPECT_EQ(closed_unopened[static_cast<std::size_t>(w)], 0) << "worker " << w;
}

TEST_P(SingleCallerConformance, MapsFromSeveralThreadsTakeTurnsWithAHelperItsCombineStepIncluded) {
  long total = 0;
  const auto count = with_reduction(context(), total, 0L, std::plus<>(), [](int, std::size_t, int v, long& partial) {
    partial += v;
  });
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int m = 0; m < 20; ++m) {
        try {
          context().map(count, std::vector<int>(10, 1));
        } catch (...) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(total, 4 * 20 * 10);
}

TEST_P(SingleCallerConformance, AHelperSharedByMapsNestedInSeveralWorkersAtOnceIsALogicError) {
  const int n = context().num_workers();
  // [0]: workers that arrived in the outer kernel; [1]: nested maps refused the helper; [2]: how the
  // context runs its workers, as the first worker to know decides: 1 at once, 2 one after the other.
  auto counts = context().alloc<int>(3, {.fill = 0});
  auto nested_kernel_calls = context().alloc<long>({1}, {.fill = 0});
  const auto count = [&](int k) { return std::atomic_ref<int>(counts[static_cast<std::size_t>(k)]); };
  constexpr int kAtOnce = 1, kOneAfterTheOther = 2;
  const auto wait_until = [](auto done, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    return done();
  };
  // When the workers run at once, the nested map that has the helper stays in its kernel until every
  // other worker's nested map has been refused: the maps overlap for certain.
  const auto shared = with_local_copies(context(), nested_kernel_calls, std::plus<>(),
                                        [&](int, std::size_t, int, Array<long> mine) {
                                          if (count(2).load() == kAtOnce) {
                                            EXPECT_TRUE(wait_until([&] { return count(1).load() == n - 1; },
                                                                   std::chrono::seconds(30)))
                                                << count(1).load() << " of " << n - 1 << " nested maps were refused";
                                          }
                                          mine[0] += 1;
                                        });
  const auto run = [&] {
    context().map(
        [&](int, std::size_t, int) {
          // Every worker is here at once, or (a context may run its workers one after the other) the
          // first waits 2 s in vain.
          count(0).fetch_add(1);
          const bool everyone = wait_until([&] { return count(0).load() == n; }, std::chrono::seconds(2));
          int undecided = 0;
          count(2).compare_exchange_strong(undecided, everyone ? kAtOnce : kOneAfterTheOther);
          try {
            context().map(shared, std::views::iota(0, 1));
          } catch (const std::logic_error&) {
            count(1).fetch_add(1);
            throw;
          }
        },
        std::views::iota(0, n));
  };
  try {
    run();
  } catch (const WorkerError& e) {
    EXPECT_THAT(e.what(), HasSubstr("pasha::with_local_copies: already in a map"));
  }
  if (n > 1 && count(2).load() == kAtOnce) {
    EXPECT_EQ(count(1).load(), n - 1) << "every nested map but one must be refused the helper";
    EXPECT_EQ(nested_kernel_calls[0], 1) << "the one nested map that had the helper combines its copy";
  } else {
    EXPECT_EQ(count(1).load(), 0) << "nested maps one after the other may each have the helper";
    EXPECT_EQ(nested_kernel_calls[0], n);
  }
}

TEST_P(SingleCallerConformance, AHelperIsForTheContextItWasMadeForAndForOneMapAtATime) {
  double total = 0;
  auto sum = with_reduction(context(), total, 0.0, std::plus<>(), [](int, std::size_t, int v, double& p) { p += v; });
  const auto other = GetParam()();
  try {
    other->map(sum, std::views::iota(0, 10));
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("pasha::with_reduction: made for another context"));
  }
  // Reused for maps one after the other, it starts afresh each time.
  context().map(sum, std::views::iota(0, 10));
  context().map(sum, std::views::iota(0, 10));
  EXPECT_EQ(total, 90.0);
}

TEST_P(SingleCallerConformance, HelpersWorkInAMapStartedFromInsideAKernel) {
  auto totals = context().alloc<std::int64_t>(6, {.fill = 0});
  context().map(
      [&](int, std::size_t outer, int) {
        std::int64_t total = 0;
        context().map(with_reduction(context(), total, std::int64_t{0}, std::plus<>(),
                                     [](int, std::size_t, int v, std::int64_t& partial) { partial += v; }),
                      std::views::iota(0, 100));
        totals[outer] = total;
      },
      std::views::iota(0, 6));
  for (std::size_t i = 0; i < 6; ++i) EXPECT_EQ(totals[i], 4950) << i;
}

// --- Named axes ------------------------------------------------------------------------------------

TEST_P(ContextConformance, AlongANamedAxisGivesSubArraysThatKeepTheOtherNames) {
  auto frames = context().alloc<double>({3, 4, 5}, {.axes = {"train", "pulse", "pixel"}});
  for (std::size_t t = 0; t < 3; ++t)
    for (std::size_t p = 0; p < 4; ++p)
      for (std::size_t x = 0; x < 5; ++x) frames(t, p, x) = static_cast<double>(100 * t + 10 * p + x);
  EXPECT_THAT(NamesOf(frames), ElementsAre("train", "pulse", "pixel"));
  EXPECT_EQ(frames.axis("pulse"), 1u);

  auto per_pulse = context().alloc<double>(4, {.fill = 0, .axes = {"pulse"}});
  auto names_right = context().alloc<int>(4, {.fill = 0});
  context().map(
      [&](int, std::size_t pulse, Array<double> sub) {
        names_right[pulse] = sub.ndim() == 2 && sub.axis_name(0) == "train" && sub.axis_name(1) == "pixel";
        for (double v : sub) per_pulse[pulse] += v;
      },
      along(frames, "pulse"));
  for (std::size_t p = 0; p < 4; ++p) {
    EXPECT_EQ(names_right[p], 1) << "pulse " << p;
    EXPECT_EQ(per_pulse[p], 5 * (100 * 3) + 3 * 5 * 10.0 * static_cast<double>(p) + 3 * 10.0) << "pulse " << p;
  }
}

TEST_P(ContextConformance, AllocLikeKeepsAxisNamesAndPerWorkerArraysNameTheWorkerAxis) {
  auto frames = context().alloc<float>({2, 3}, {.axes = {"train", "pulse"}});
  EXPECT_THAT(NamesOf(context().alloc_like(frames)), ElementsAre("train", "pulse"));
  EXPECT_THAT(NamesOf(context().alloc_like<double>(frames, {.per_worker = true})), ElementsAre("worker", "train", "pulse"));
  EXPECT_THAT(NamesOf(context().alloc_like(frames, {.order = Order::F, .per_worker = true})),
              ElementsAre("train", "pulse", "worker"));
  EXPECT_THAT(NamesOf(context().alloc_like(frames, {.axes = {"a", "b"}})), ElementsAre("a", "b"));
  EXPECT_FALSE(context().alloc_like(frames, {.shape = {6}}).has_axis_names()) << "names kept for another rank";
}

TEST_P(ContextConformance, BadAxisNamesAreInvalidArgumentNamingThem) {
  auto frames = context().alloc<float>({2, 3}, {.axes = {"train", "pulse"}});
  try {
    (void)along(frames, "module");
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("no axis named \"module\""));
    EXPECT_THAT(e.what(), HasSubstr("(\"train\", \"pulse\")"));
  }
  EXPECT_THROW((void)context().alloc<float>({2, 3}, {.axes = {"train"}}), std::invalid_argument);
  EXPECT_THROW((void)context().alloc<float>({2, 3}, {.axes = {"x", "x"}}), std::invalid_argument);
  EXPECT_THROW((void)context().alloc<float>({2}, {.per_worker = true, .axes = {"worker"}}), std::invalid_argument);
  EXPECT_THROW((void)along(context().alloc<float>({2, 3}), "train"), std::invalid_argument);
  EXPECT_THROW((void)context().alloc<float>({2, 3}).named({"", "pulse"}).axis(""), std::invalid_argument);
}

TEST_P(ContextConformance, AllocLikeOfAPerWorkerArrayPerWorkerDropsTheNamesRatherThanRepeatWorker) {
  auto partial = context().alloc<double>({3}, {.per_worker = true, .axes = {"bin"}});
  EXPECT_THAT(NamesOf(partial), ElementsAre("worker", "bin"));
  auto again = context().alloc_like(partial, {.per_worker = true});
  EXPECT_EQ(again.ndim(), 3u);
  EXPECT_FALSE(again.has_axis_names());
}

// --- alloc_like of anything array-like ----------------------------------------------------------

TEST_P(ContextConformance, AllocLikeTakesVectorsSpansStdArraysAndAPointerWithAShape) {
  const std::vector<float> vector(7, 1.0f);
  auto from_vector = context().alloc_like(vector, {.fill = 2.0f});
  static_assert(std::is_same_v<decltype(from_vector), Array<float>>);
  EXPECT_THAT(ShapeOf(from_vector), ElementsAre(7));
  EXPECT_EQ(from_vector[6], 2.0f);

  const std::array<std::int16_t, 5> fixed{};
  auto from_array = context().alloc_like<double>(std::span(fixed));
  static_assert(std::is_same_v<decltype(from_array), Array<double>>);
  EXPECT_THAT(ShapeOf(from_array), ElementsAre(5));

  const double raw[12] = {};
  auto from_pointer = context().alloc_like(raw + 0, {3, 4}, {.order = Order::F});
  EXPECT_THAT(ShapeOf(from_pointer), ElementsAre(3, 4));
  EXPECT_TRUE(from_pointer.f_contiguous());

  auto one_d_from_pointer = context().alloc_like(raw + 0, {12});
  EXPECT_THAT(ShapeOf(one_d_from_pointer), ElementsAre(12));

  const std::vector<std::size_t> shape_at_run_time{2, 5};
  auto reshaped = context().alloc_like(vector, {.shape = shape_at_run_time});
  EXPECT_THAT(ShapeOf(reshaped), ElementsAre(2, 5));
}

// --- Progress reports --------------------------------------------------------------------------------

// Sends what the process writes to stderr into a file while alive, and gives it back.
class CapturedStderr {
 public:
  CapturedStderr() {
    char path[] = "/tmp/pasha_stderr_XXXXXX";
    const int fd = ::mkstemp(path);
    path_ = path;
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~CapturedStderr() {
    restore();
    ::unlink(path_.c_str());
  }
  std::string text() {
    restore();
    std::ifstream in(path_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }
  std::string path_;
  int saved_ = -1;
};

TEST_P(ContextConformance, ProgressReportsCountEveryElementOnStderr) {
  const Context::ProgressScope scope = context().progress_scope();
  CapturedStderr captured;
  context().map([](int, std::size_t, int) { std::this_thread::sleep_for(std::chrono::microseconds(200)); },
                std::views::iota(0, 1000), {.progress = true, .progress_every = std::chrono::milliseconds(20)});
  const std::string text = captured.text();
  if (!scope.report_here) {
    EXPECT_EQ(text, "");
    return;
  }
  // Every element of the map, those other processes' workers visited included.
  const std::string last = text.substr(text.rfind("pasha: "));
  EXPECT_THAT(last, HasSubstr("100%  1000/1000")) << text;
  EXPECT_THAT(last, HasSubstr("/s")) << text;
  EXPECT_EQ(text.find("failed"), std::string::npos) << text;
}

// Not indexed, and lets exceptions pass: its elements are counted one by one.
struct TenSharesOfTen {
  static constexpr bool pasha_exceptions_pass_through = true;
  std::vector<int> split(int) const { return {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; }
  template <class Visit>
  void iterate(int share, Visit&& visit) const {
    for (int i = 0; i < 10; ++i) visit(static_cast<std::size_t>(10 * share + i));
  }
};

TEST_P(SingleCallerConformance, ProgressCountsTheElementsOfFunctorsThatAreNotIndexed) {
  const Context::ProgressScope scope = context().progress_scope();
  CapturedStderr captured;
  context().map([](int, std::size_t) {}, TenSharesOfTen{}, {.progress = true});
  const std::string text = captured.text();
  if (scope.report_here) {
    EXPECT_THAT(text, HasSubstr("pasha: 100 done")) << text;
  }
}

TEST_P(ContextConformance, ProgressIsOffByDefaultAndAFailedMapEndsItsReportAsFailed) {
  const Context::ProgressScope scope = context().progress_scope();
  {
    CapturedStderr captured;
    context().map([](int, std::size_t, int) {}, std::views::iota(0, 100));
    EXPECT_EQ(captured.text(), "");
  }
  CapturedStderr captured;
  EXPECT_THROW(context().map([](int, std::size_t i, int) {
                               if (i == 0) throw std::runtime_error("first");
                             },
                             std::views::iota(0, 100), {.progress = true}),
               WorkerError);
  const std::string text = captured.text();
  if (scope.report_here) {
    EXPECT_THAT(text, HasSubstr("(failed)"));
  }
}

}  // namespace
}  // namespace pasha::conformance
