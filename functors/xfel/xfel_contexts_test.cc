// The XFEL functors in every context: each train is visited exactly once with its index, train id
// and rows. Kernels report only through arrays from the context's alloc, so that the checks also
// hold for forked workers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>

#include <atomic>
#include <chrono>
#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "conformance/pasha_contexts.h"
#include "functors/xfel/testing/make_run.h"
#include "functors/xfel/testing/temp_run.h"
#include "functors/xfel/xfel.h"
#include "pasha/pasha.h"

namespace pasha::xfel {
namespace {

class XfelInEveryContext : public ::testing::TestWithParam<conformance::ContextFactory> {
 protected:
  void SetUp() override { context_ = GetParam()(); }
  Context& ctx() { return *context_; }

  static const testing::TempRun& run() {
    static const testing::TempRun run = testing::make_temp_run("contexts_run");
    return run;
  }
  static const mock::RunSpec& spec() {
    static const mock::RunSpec spec;
    return spec;
  }

  // Sum of camera pixels of one train, as written.
  static std::uint64_t camera_sum(std::uint64_t tid) {
    std::uint64_t sum = 0;
    const std::size_t pixels = spec().image_height * spec().image_width;
    for (std::uint64_t f = 0; f < mock::camera_count(tid); ++f) {
      for (std::size_t e = 0; e < pixels; ++e) sum += mock::camera_pixel(tid, f, e);
    }
    return sum;
  }

 private:
  std::shared_ptr<Context> context_;
};

void expect_each_train_once(const std::vector<std::uint64_t>& ids, const Array<int>& visits,
                            const Array<std::uint64_t>& seen_ids, const Array<int>& workers, int num_workers) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(visits[i], 1) << "index " << i;
    EXPECT_EQ(seen_ids[i], ids[i]) << "index " << i;
    EXPECT_GE(workers[i], 0);
    EXPECT_LT(workers[i], num_workers);
  }
}

TEST_P(XfelInEveryContext, KeyDataMapVisitsEveryTrainOnceWithItsIndexIdAndRows) {
  const DataCollection dc = RunDirectory(run().dir);
  const auto kd = dc.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  const std::size_t n = kd.size();
  auto visits = ctx().alloc<int>(n, {.fill = 0});
  auto workers = ctx().alloc<int>(n, {.fill = -1});
  auto seen_ids = ctx().alloc<std::uint64_t>(n, {.fill = 0});
  auto rows = ctx().alloc<std::uint64_t>(n, {.fill = 99});
  auto sums = ctx().alloc<std::uint64_t>(n, {.fill = 0});
  auto shapes_ok = ctx().alloc<int>(n, {.fill = 0});
  ctx().map(
      [&](int worker_id, std::size_t index, std::uint64_t train_id, Array<std::uint16_t> data) {
        visits[index] += 1;
        workers[index] = worker_id;
        seen_ids[index] = train_id;
        rows[index] = data.shape()[0];
        shapes_ok[index] = data.ndim() == 3 && data.shape()[1] == spec().image_height &&
                           data.shape()[2] == spec().image_width;
        sums[index] = std::accumulate(data.begin(), data.end(), std::uint64_t{0});
      },
      kd);
  expect_each_train_once(dc.train_ids(), visits, seen_ids, workers, ctx().num_workers());
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t tid = dc.train_ids()[i];
    EXPECT_EQ(rows[i], mock::camera_count(tid)) << "train " << tid;
    EXPECT_EQ(shapes_ok[i], 1);
    EXPECT_EQ(sums[i], camera_sum(tid)) << "train " << tid;
  }
}

TEST_P(XfelInEveryContext, DynamicScheduleAlsoVisitsEveryTrainOnce) {
  const DataCollection dc = RunDirectory(run().dir);
  const auto kd = dc.key_data<std::uint16_t>(mock::kDetector, "image.data");
  const std::size_t n = kd.size();
  auto visits = ctx().alloc<int>(n, {.fill = 0});
  auto workers = ctx().alloc<int>(n, {.fill = -1});
  auto seen_ids = ctx().alloc<std::uint64_t>(n, {.fill = 0});
  auto rows = ctx().alloc<std::uint64_t>(n, {.fill = 99});
  ctx().map(
      [&](int worker_id, std::size_t index, std::uint64_t train_id, Array<std::uint16_t> data) {
        visits[index] += 1;
        workers[index] = worker_id;
        seen_ids[index] = train_id;
        rows[index] = data.shape()[0];
      },
      kd, {.schedule = Schedule::dynamic, .chunk = 5});
  expect_each_train_once(dc.train_ids(), visits, seen_ids, workers, ctx().num_workers());
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(rows[i], mock::detector_count(dc.train_ids()[i]));
}

TEST_P(XfelInEveryContext, DataCollectionMapGivesEachTrainsDataForEverySelectedSource) {
  const DataCollection sel = RunDirectory(run().dir)
                                 .select({{mock::kCameraOutput, "data.image.*"}, {mock::kXgm, "*"}, {mock::kDetector, "*"}})
                                 .select_trains(by_id(10007, 10051));
  const std::size_t n = sel.size();
  ASSERT_EQ(n, 44u);
  auto visits = ctx().alloc<int>(n, {.fill = 0});
  auto workers = ctx().alloc<int>(n, {.fill = -1});
  auto seen_ids = ctx().alloc<std::uint64_t>(n, {.fill = 0});
  auto camera = ctx().alloc<std::uint64_t>(n, {.fill = 0});
  auto has_camera = ctx().alloc<int>(n, {.fill = -1});
  auto frames = ctx().alloc<std::uint64_t>(n, {.fill = 99});
  auto flux = ctx().alloc<float>(n, {.fill = -1.0f});
  ctx().map(
      [&](int worker_id, std::size_t index, std::uint64_t train_id, const TrainData& data) {
        visits[index] += 1;
        workers[index] = worker_id;
        seen_ids[index] = train_id;
        has_camera[index] = data.has(mock::kCameraOutput, "data.image.pixels");
        const auto image = data.get<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
        camera[index] = std::accumulate(image.begin(), image.end(), std::uint64_t{0});
        frames[index] = data.get<std::uint16_t>(mock::kDetector, "image.data").shape()[0];
        flux[index] = data.get<float>(mock::kXgm, "pulseEnergy.photonFlux")[0];
      },
      sel);
  expect_each_train_once(sel.train_ids(), visits, seen_ids, workers, ctx().num_workers());
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t tid = sel.train_ids()[i];
    EXPECT_EQ(has_camera[i], mock::camera_count(tid) > 0 ? 1 : 0);
    EXPECT_EQ(camera[i], camera_sum(tid));
    EXPECT_EQ(frames[i], mock::detector_count(tid));
    EXPECT_EQ(flux[i], mock::xgm_photon_flux(tid));
  }
}

TEST_P(XfelInEveryContext, SourceDataGivesEachTrainItsViewOfTheSource) {
  const DataCollection dc = RunDirectory(run().dir);
  const SourceData camera = dc.source_data(mock::kCameraOutput);
  EXPECT_THAT(camera.keys(), ::testing::Contains("data.image.pixels"));
  const std::size_t n = camera.size();
  auto visits = ctx().alloc<int>(n, {.fill = 0});
  auto sums = ctx().alloc<std::uint64_t>(n, {.fill = 0});
  auto ids = ctx().alloc<std::uint64_t>(n, {.fill = 0});
  auto has = ctx().alloc<int>(n, {.fill = -1});
  ctx().map(
      [&](int, std::size_t index, std::uint64_t train_id, const SourceTrain& train) {
        visits[index] += 1;
        has[index] = train.has("data.image.pixels") ? 1 : 0;
        const auto image = train.get<std::uint16_t>("data.image.pixels");
        sums[index] = std::accumulate(image.begin(), image.end(), std::uint64_t{0});
        const auto tid = train.get<std::uint64_t>("data.trainId");
        ids[index] = tid.size() > 0 ? tid[0] : train_id;
      },
      camera);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t tid = dc.train_ids()[i];
    EXPECT_EQ(visits[i], 1);
    EXPECT_EQ(has[i], mock::camera_count(tid) > 0 ? 1 : 0);
    EXPECT_EQ(sums[i], camera_sum(tid)) << "train " << tid;
    EXPECT_EQ(ids[i], tid);
  }
  EXPECT_THROW(dc.source_data("NO/SUCH/SOURCE"), std::invalid_argument);
}

TEST_P(XfelInEveryContext, DataStoredChunkedOrCompressedReadsThroughHdf5WithTheSameValues) {
  mock::RunSpec compressed = spec();
  compressed.data_storage = mock::RunSpec::Storage::compressed;
  const testing::TempRun other =
      testing::make_temp_run("compressed_" + ctx().name() + "_" + std::to_string(ctx().num_workers()), compressed);
  const auto kd = RunDirectory(other.dir).key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  auto sums = ctx().alloc<std::uint64_t>(kd.size(), {.fill = 0});
  ctx().map(
      [&](int, std::size_t index, std::uint64_t, Array<std::uint16_t> rows) {
        sums[index] = std::accumulate(rows.begin(), rows.end(), std::uint64_t{0});
      },
      kd);
  for (std::size_t i = 0; i < kd.size(); ++i) EXPECT_EQ(sums[i], camera_sum(kd.train_ids()[i]));
}

TEST_P(XfelInEveryContext, RowsMappedFromTheFileGiveTheSameValuesAndKernelsMayWriteToThem) {
  const testing::ScopedMapThreshold mapped(1);
  const auto kd = RunDirectory(run().dir).key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  auto sums = ctx().alloc<std::uint64_t>(kd.size(), {.fill = 0});
  for (int pass = 0; pass < 2; ++pass) {  // the second pass sees none of the first one's writes
    ctx().map(
        [&](int, std::size_t index, std::uint64_t, Array<std::uint16_t> rows) {
          sums[index] += std::accumulate(rows.begin(), rows.end(), std::uint64_t{0});
          std::fill(rows.begin(), rows.end(), 0);
        },
        kd);
  }
  for (std::size_t i = 0; i < kd.size(); ++i) EXPECT_EQ(sums[i], 2 * camera_sum(kd.train_ids()[i]));
}

TEST_P(XfelInEveryContext, AMapInsideAKernelLeavesTheOuterKernelsRowsAlone) {
  for (const std::uint64_t map_from : {std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()}) {
    SCOPED_TRACE("rows mapped from " + std::to_string(map_from) + " bytes");
    const testing::ScopedMapThreshold mapped(map_from);
    const DataCollection dc = RunDirectory(run().dir);
    const auto camera = dc.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
    const auto detector = dc.key_data<std::uint16_t>(mock::kDetector, "image.data").select_trains(by_index(0, 3));
    auto sums = ctx().alloc<std::uint64_t>(camera.size(), {.fill = 0});
    ctx().map(
        [&](int, std::size_t index, std::uint64_t, Array<std::uint16_t> rows) {
          const std::uint64_t before = std::accumulate(rows.begin(), rows.end(), std::uint64_t{0});
          ctx().map([](int, std::size_t, std::uint64_t, Array<std::uint16_t>) {}, detector);  // nested: inline
          sums[index] = std::accumulate(rows.begin(), rows.end(), std::uint64_t{0}) == before ? before : 0;
        },
        camera);
    for (std::size_t i = 0; i < camera.size(); ++i) EXPECT_EQ(sums[i], camera_sum(camera.train_ids()[i])) << i;
  }
}

TEST_P(XfelInEveryContext, HandlesOpenedByTheCallerBeforeTheMapStayUsableOnBothSides) {
  const DataCollection dc = RunDirectory(run().dir);
  const auto kd = dc.key_data<std::uint16_t>(mock::kDetector, "image.data");
  const Array<std::uint16_t> before = kd.ndarray();  // the caller now holds open handles
  auto per_worker = ctx().alloc<std::uint64_t>(1, {.fill = 0, .per_worker = true});
  for (int repeat = 0; repeat < 2; ++repeat) {
    ctx().map(
        [&](int worker_id, std::size_t, std::uint64_t, Array<std::uint16_t> data) {
          per_worker(worker_id, 0) += std::accumulate(data.begin(), data.end(), std::uint64_t{0});
        },
        kd);
  }
  std::uint64_t total = 0;
  for (int w = 0; w < ctx().num_workers(); ++w) total += per_worker(w, 0);
  EXPECT_EQ(total, 2 * std::accumulate(before.begin(), before.end(), std::uint64_t{0}));
  const Array<std::uint16_t> after = kd.ndarray();
  EXPECT_TRUE(std::equal(before.begin(), before.end(), after.begin(), after.end()));
}

TEST_P(XfelInEveryContext, ABadIndexInOneTrainFailsTheMapWithAWorkerError) {
  const testing::TempRun bad =
      testing::make_temp_run("contexts_bad_" + ctx().name() + "_" + std::to_string(ctx().num_workers()));
  {
    const hid_t f = H5Fopen(bad.files[1].c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    const hid_t ds = H5Dopen2(f, "INDEX/FXE_XAD_GEC/CAM/CAMERA:daqOutput/data/count", H5P_DEFAULT);
    const hid_t space = H5Dget_space(ds);
    const hsize_t i = 5, one = 1;
    const std::uint64_t huge = 1'000'000;
    H5Sselect_elements(space, H5S_SELECT_SET, 1, &i);
    const hid_t mem = H5Screate_simple(1, &one, nullptr);
    ASSERT_GE(H5Dwrite(ds, H5T_NATIVE_UINT64, mem, space, H5P_DEFAULT, &huge), 0);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(f);
  }
  const DataCollection dc = RunDirectory(bad.dir).select(mock::kCameraOutput);
  try {
    ctx().map([](int, std::size_t, std::uint64_t, const TrainData& data) {
      data.get<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
    }, dc);
    ADD_FAILURE() << "no WorkerError";
  } catch (const WorkerError& error) {
    EXPECT_NE(std::string(error.what()).find("RAW-R0450-DA01-S00001.h5"), std::string::npos) << error.what();
  }
}

// Process maps over chunked camera data (read through HDF5, in the workers too) while another thread
// of the caller is inside HDF5: the workers must not inherit HDF5, or pasha's lock of it, mid-call. A
// map that hangs is stopped by its interrupt check and fails the test.
class XfelForkSafety : public ::testing::Test {
 protected:
  static mock::RunSpec chunked() {
    mock::RunSpec spec;
    spec.data_storage = mock::RunSpec::Storage::chunked;
    return spec;
  }

  // Maps the sum of each train's pixels `rounds` times; true unless a map hung for 60 s.
  bool map_sums(int rounds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    try {
      for (int round = 0; round < rounds; ++round) {
        context_.map(
            [&](int, std::size_t index, std::uint64_t, Array<std::uint16_t> rows) {
              sums_[index] = std::accumulate(rows.begin(), rows.end(), std::uint64_t{0});
            },
            kd_, {.interrupt_check = [&] {
              if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("hung");
            }});
      }
    } catch (const std::runtime_error&) {
      return false;
    }
    return true;
  }

  void expect_sums() const {
    for (std::size_t i = 0; i < kd_.size(); ++i) {
      std::uint64_t expected = 0;
      const std::uint64_t tid = kd_.train_ids()[i];
      for (std::uint64_t f = 0; f < mock::camera_count(tid); ++f) {
        for (std::size_t e = 0; e < spec_.image_height * spec_.image_width; ++e) expected += mock::camera_pixel(tid, f, e);
      }
      EXPECT_EQ(sums_[i], expected);
    }
  }

  const mock::RunSpec spec_ = chunked();
  const testing::TempRun run_ = testing::make_temp_run(
      std::string("fork_safety_") + ::testing::UnitTest::GetInstance()->current_test_info()->name(), spec_);
  const DataCollection run_data_ = RunDirectory(run_.dir);
  const KeyData<std::uint16_t> kd_ = run_data_.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  ProcessContext context_{2};
  Array<std::uint64_t> sums_ = context_.alloc<std::uint64_t>(kd_.size(), {.fill = 0});
};

// ... pasha's own reading in that thread.
TEST_F(XfelForkSafety, ProcessMapsReadWhileAnotherThreadReadsThroughHdf5) {
  std::atomic<bool> reading{true};
  std::thread reader([&] {
    while (reading) (void)kd_.ndarray();
  });
  const bool finished = map_sums(30);
  reading = false;
  reader.join();
  EXPECT_TRUE(finished) << "a map hung";
  expect_sums();
}

// ... another library's, walking a file under HDF5's lock (as h5py's visit runs its callbacks).
TEST_F(XfelForkSafety, ProcessMapsReadWhileAnotherLibraryIsInsideHdf5) {
  std::atomic<bool> walking{true};
  std::atomic<int> walks{0};
  std::thread walker([&] {
    const H5L_iterate_t slow_visit = [](hid_t, const char*, const H5L_info_t*, void*) -> herr_t {
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      return 0;
    };
    while (walking) {
      const hid_t file = H5Fopen(run_.files[0].c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      if (file < 0) break;
      H5Lvisit(file, H5_INDEX_NAME, H5_ITER_NATIVE, slow_visit, nullptr);  // under HDF5's lock throughout
      H5Fclose(file);
      walks.fetch_add(1);
    }
  });
  const bool finished = map_sums(20);
  walking = false;
  walker.join();
  EXPECT_TRUE(finished) << "a map hung (forked while another thread was inside HDF5)";
  EXPECT_GT(walks.load(), 0);
  expect_sums();
}

INSTANTIATE_TEST_SUITE_P(PashaContexts, XfelInEveryContext, ::testing::ValuesIn(conformance::pasha_contexts()),
                         conformance::ContextName{});

}  // namespace
}  // namespace pasha::xfel
