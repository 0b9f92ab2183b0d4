// The XFEL run-file reader: format versions, selections, type conversion, and bad input.
#include "functors/xfel/xfel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "contexts/serial/serial_context.h"
#include "functors/xfel/detail/run_file.h"
#include "functors/xfel/testing/make_run.h"
#include "functors/xfel/testing/temp_run.h"

namespace pasha::xfel {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::make_temp_run;
using testing::TempRun;

std::vector<std::uint64_t> expected_ids(const mock::RunSpec& spec) {
  std::vector<std::uint64_t> ids(spec.num_trains);
  std::iota(ids.begin(), ids.end(), spec.first_train);
  return ids;
}

// Writes `value` at position `i` of a 1-d u64 dataset.
void overwrite_u64(const std::string& file, const std::string& path, hsize_t i, std::uint64_t value) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t ds = H5Dopen2(f, path.c_str(), H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  const hid_t space = H5Dget_space(ds);
  H5Sselect_elements(space, H5S_SELECT_SET, 1, &i);
  const hsize_t one = 1;
  const hid_t mem = H5Screate_simple(1, &one, nullptr);
  EXPECT_GE(H5Dwrite(ds, H5T_NATIVE_UINT64, mem, space, H5P_DEFAULT, &value), 0);
  H5Sclose(mem);
  H5Sclose(space);
  H5Dclose(ds);
  H5Fclose(f);
}

void delete_link(const std::string& file, const std::string& path) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  EXPECT_GE(H5Ldelete(f, path.c_str(), H5P_DEFAULT), 0);
  H5Fclose(f);
}

template <class F>
std::string format_error_of(F&& f) {
  try {
    f();
  } catch (const FormatError& error) {
    return error.what();
  }
  ADD_FAILURE() << "no FormatError";
  return "";
}

TEST(XfelRunDirectory, ReadsFixedLengthStringListsAndTheChecksummedFileFormat) {
  mock::RunSpec spec;
  spec.fixed_length_strings = true;
  spec.checksummed_format = true;
  const TempRun run = make_temp_run("fixed_strings", spec);
  const DataCollection dc = RunDirectory(run.dir);
  EXPECT_EQ(detail::RunFile::open(run.files[0])->format_version(), "1.0");
  EXPECT_EQ(dc.all_sources().size(), 5u);
  EXPECT_EQ(dc.train_ids(), expected_ids(spec));
}

TEST(XfelRunDirectory, ListsSourcesKeysAndTheSortedUnionOfTrainIds) {
  const TempRun run = make_temp_run("sources");
  const DataCollection dc = RunDirectory(run.dir);
  EXPECT_EQ(dc.files().size(), 5u);
  EXPECT_EQ(dc.train_ids(), expected_ids({}));
  EXPECT_THAT(dc.control_sources(), ElementsAre(mock::kCamera, mock::kXgm));
  EXPECT_THAT(dc.instrument_sources(), ElementsAre(mock::kDetector, mock::kCameraOutput, mock::kXgmOutput));
  EXPECT_EQ(dc.all_sources().size(), 5u);
  EXPECT_THAT(dc.keys_for_source(mock::kCamera), ElementsAre("exposureTime.timestamp", "exposureTime.value"));
  EXPECT_THAT(dc.keys_for_source(mock::kCameraOutput), ElementsAre("data.image.pixels", "data.trainId"));
  EXPECT_THAT(dc.index_groups(mock::kDetector), ElementsAre("header", "image"));
  EXPECT_THROW(dc.keys_for_source("NO/SUCH/SOURCE"), std::invalid_argument);
}

TEST(XfelRunDirectory, CollectionsKeyDataAndSourceDataThatWereMovedFromStayWhole) {
  const TempRun run = make_temp_run("moved");
  DataCollection dc = RunDirectory(run.dir);
  const DataCollection moved_to = std::move(dc);
  EXPECT_EQ(dc.train_ids(), moved_to.train_ids());
  EXPECT_EQ(dc.all_sources(), moved_to.all_sources());
  auto kd = dc.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  const auto kd_moved_to = std::move(kd);
  EXPECT_EQ(kd.shape(), kd_moved_to.shape());
  EXPECT_EQ(kd.size(), kd_moved_to.size());
  SourceData sd = dc.source_data(mock::kCamera);
  const SourceData sd_moved_to = std::move(sd);
  EXPECT_EQ(sd.keys(), sd_moved_to.keys());
  SerialContext context;
  std::size_t trains = 0;
  context.map([&](int, std::size_t, std::uint64_t, const Array<std::uint16_t>&) { ++trains; }, kd);
  EXPECT_EQ(trains, kd.size());
}

TEST(XfelRunFiles, SomeFilesOfARunInAnyOrderHoldTheirOwnTrainsAndSourcesOnly) {
  const TempRun run = make_temp_run("run_files");
  const DataCollection whole = RunDirectory(run.dir);
  std::vector<std::string> detector_files;
  for (const std::string& file : whole.files()) {
    if (file.find("-DET00-") != std::string::npos) detector_files.push_back(file);
  }
  ASSERT_GT(detector_files.size(), 1u);
  std::reverse(detector_files.begin(), detector_files.end());
  detector_files.push_back(detector_files.front());  // a duplicate counts once
  const DataCollection part = RunFiles(detector_files);
  EXPECT_EQ(part.files().size(), detector_files.size() - 1);
  EXPECT_EQ(part.all_sources(), std::vector<std::string>{mock::kDetector});
  EXPECT_EQ(part.key_data<std::uint16_t>(mock::kDetector, "image.data").ndarray().size(),
            whole.key_data<std::uint16_t>(mock::kDetector, "image.data").ndarray().size());
  EXPECT_THAT(format_error_of([] { RunFiles({}, {}, "nothing"); }), HasSubstr("nothing: no usable run files"));
}

TEST(XfelKeyData, ShapeCountsAndNdarrayMatchTheWrittenValuesAcrossSequenceFiles) {
  const mock::RunSpec spec;
  const TempRun run = make_temp_run("keydata", spec);
  const DataCollection dc = RunDirectory(run.dir);
  const KeyData<std::uint16_t> kd = dc.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  EXPECT_EQ(kd.entry_shape(), (Shape{spec.image_height, spec.image_width}));
  std::vector<std::uint64_t> counts;
  std::uint64_t total = 0;
  for (std::uint64_t tid : dc.train_ids()) {
    counts.push_back(mock::camera_count(tid));
    total += mock::camera_count(tid);
  }
  EXPECT_EQ(kd.data_counts(), counts);
  EXPECT_EQ(kd.shape(), (Shape{total, spec.image_height, spec.image_width}));
  const Array<std::uint16_t> all = kd.ndarray();
  ASSERT_EQ(all.shape()[0], total);
  const std::size_t pixels = spec.image_height * spec.image_width;
  std::size_t row = 0;
  for (std::uint64_t tid : dc.train_ids()) {
    for (std::uint64_t frame = 0; frame < mock::camera_count(tid); ++frame, ++row) {
      for (std::size_t e = 0; e < pixels; e += 97) {
        ASSERT_EQ(all[row * pixels + e], mock::camera_pixel(tid, frame, e)) << "train " << tid << " frame " << frame;
      }
    }
  }
  const auto coords = kd.train_id_coordinates();
  ASSERT_EQ(coords.size(), total);
  EXPECT_EQ(coords.front(), spec.first_train + 1);
}

TEST(XfelKeyData, ControlKeysHaveOneValuePerTrainAndMayOmitValue) {
  const TempRun run = make_temp_run("control");
  const DataCollection dc = RunDirectory(run.dir);
  const auto flux = dc.key_data<float>(mock::kXgm, "pulseEnergy.photonFlux");
  EXPECT_EQ(flux.key(), "pulseEnergy.photonFlux.value");
  EXPECT_EQ(flux.shape(), Shape{64});
  const Array<float> values = flux.ndarray();
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(values[i], mock::xgm_photon_flux(dc.train_ids()[i]));
  EXPECT_EQ(dc.key_data<std::int32_t>(mock::kXgm, "current.bottom.rangeCode.value").ndarray()[9],
            mock::xgm_range_code(dc.train_ids()[9]));
}

TEST(XfelKeyData, ReadsIntoOtherNumericTypesThroughHdf5Conversion) {
  const TempRun run = make_temp_run("convert");
  const DataCollection dc = RunDirectory(run.dir);
  const auto as_u16 = dc.key_data<std::uint16_t>(mock::kDetector, "image.data").ndarray();
  const auto as_double = dc.key_data<double>(mock::kDetector, "image.data").ndarray();
  const auto as_i64 = dc.key_data<std::int64_t>(mock::kDetector, "image.data").ndarray();
  ASSERT_EQ(as_u16.size(), as_double.size());
  for (std::size_t i = 0; i < as_u16.size(); i += 13) {
    EXPECT_EQ(static_cast<double>(as_u16[i]), as_double[i]);
    EXPECT_EQ(static_cast<std::int64_t>(as_u16[i]), as_i64[i]);
  }
}

TEST(XfelKeyData, AStringKeyReadAsNumbersIsAFormatErrorNamingFileAndPath) {
  const TempRun run = make_temp_run("wrongtype");
  const DataCollection dc = RunDirectory(run.dir);
  const std::string what = format_error_of([&] { dc.key_data<float>(mock::kXgm, "state.value"); });
  EXPECT_THAT(what, HasSubstr("RAW-R0450-DA01-S0000"));
  EXPECT_THAT(what, HasSubstr("CONTROL/SA1_XTD2_XGM/DOOCS/MAIN/state/value"));
  EXPECT_THAT(what, HasSubstr("variable-length string"));
  // The same through TrainData::get.
  SerialContext ctx;
  EXPECT_THROW(ctx.map([&](int, std::size_t, std::uint64_t, const TrainData& data) { data.get<float>(mock::kXgm, "state"); },
                       dc.select(mock::kXgm, "state.*").select_trains(by_index(0, 1))),
               WorkerError);
}

struct VersionCase {
  std::string version;
  bool old_index;
};

class XfelFormatVersions : public ::testing::TestWithParam<VersionCase> {};

TEST_P(XfelFormatVersions, EveryVersionGivesTheSameTrainsCountsAndValues) {
  mock::RunSpec spec;
  spec.version = GetParam().version;
  spec.old_index = GetParam().old_index;
  const TempRun run = make_temp_run("version", spec);
  EXPECT_EQ(detail::RunFile::open(run.files[0])->format_version(), spec.version);
  const DataCollection dc = RunDirectory(run.dir);
  EXPECT_EQ(dc.train_ids(), expected_ids(spec));
  EXPECT_EQ(dc.all_sources().size(), 5u);
  const auto kd = dc.key_data<std::uint16_t>(mock::kDetector, "image.data");
  std::uint64_t expected_rows = 0, expected_sum = 0;
  const std::size_t pixels = spec.module_pixels * spec.module_pixels;
  for (std::uint64_t tid : dc.train_ids()) {
    expected_rows += mock::detector_count(tid);
    for (std::uint64_t f = 0; f < mock::detector_count(tid); ++f) {
      for (std::size_t e = 0; e < pixels; ++e) expected_sum += mock::detector_pixel(tid, f, e);
    }
  }
  EXPECT_EQ(kd.shape()[0], expected_rows);
  const auto all = kd.ndarray();
  EXPECT_EQ(std::accumulate(all.begin(), all.end(), std::uint64_t{0}), expected_sum);
}

INSTANTIATE_TEST_SUITE_P(Versions, XfelFormatVersions,
                         ::testing::Values(VersionCase{"0.5", false}, VersionCase{"1.0", false},
                                           VersionCase{"1.1", false}, VersionCase{"1.2", false},
                                           VersionCase{"1.0", true}),
                         [](const auto& info) {
                           std::string name = "v" + info.param.version + (info.param.old_index ? "_first_last_status" : "");
                           std::replace(name.begin(), name.end(), '.', '_');
                           return name;
                         });

class XfelSuspectTrains : public ::testing::TestWithParam<std::string> {};

TEST_P(XfelSuspectTrains, AreKeptByDefaultAndLeftOutEverywhereWhenAsked) {
  mock::RunSpec spec;
  spec.version = GetParam();
  spec.suspect_trains = {10003, 10030, 10045};
  const TempRun run = make_temp_run("suspect", spec);
  EXPECT_EQ(RunDirectory(run.dir).train_ids().size(), 64u);
  const DataCollection strict = RunDirectory(run.dir, {.inc_suspect_trains = false});
  EXPECT_EQ(strict.train_ids().size(), 61u);
  for (std::uint64_t tid : spec.suspect_trains) {
    EXPECT_FALSE(std::binary_search(strict.train_ids().begin(), strict.train_ids().end(), tid));
  }
  const auto counts = strict.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels").data_counts();
  for (std::size_t i = 0; i < counts.size(); ++i) EXPECT_EQ(counts[i], mock::camera_count(strict.train_ids()[i]));
}

INSTANTIATE_TEST_SUITE_P(Flags, XfelSuspectTrains, ::testing::Values("1.0", "1.1"),
                         [](const auto& info) { return info.param == "1.0" ? std::string("flag_1_is_good") : std::string("v1_1_flag_0_is_good"); });

TEST(XfelFormat05, GuessesInvalidTrainIdsAtADescentLikeExtraData) {
  // One stray high id early: invalidating it (1 id) beats invalidating the 4 later ids.
  EXPECT_EQ(detail::guess_valid_train_ids({10, 11, 99, 12, 13, 14, 15}),
            (std::vector<bool>{true, true, false, true, true, true, true}));
  // A drop back near the end: the later ids are fewer, so they go.
  EXPECT_EQ(detail::guess_valid_train_ids({10, 11, 12, 13, 14, 12, 13}),
            (std::vector<bool>{true, true, true, true, true, false, false}));
  EXPECT_EQ(detail::guess_valid_train_ids({1, 2, 3}), (std::vector<bool>{true, true, true}));
}

TEST(XfelSelect, GlobsPickSourcesAndKeys) {
  const TempRun run = make_temp_run("select");
  const DataCollection dc = RunDirectory(run.dir);
  const DataCollection sel = dc.select("FXE_XAD_GEC/CAM/*", "data.image.*");
  EXPECT_THAT(sel.all_sources(), ElementsAre(mock::kCameraOutput));
  EXPECT_THAT(sel.keys_for_source(mock::kCameraOutput), ElementsAre("data.image.pixels"));
  EXPECT_EQ(sel.train_ids(), dc.train_ids());
  const DataCollection both = dc.select({{"*XGM*", "*.value"}, {"*:xtdf", "header.*"}});
  EXPECT_THAT(both.all_sources(), ElementsAre(mock::kDetector, mock::kXgm));
  EXPECT_EQ(both.keys_for_source(mock::kXgm).size(), 4u);
  EXPECT_THROW(dc.select("NOTHING*"), std::invalid_argument);
  EXPECT_THROW(sel.key_data<float>(mock::kXgm, "pulseEnergy.photonFlux.value"), std::invalid_argument);
}

TEST(XfelSelectTrains, ByIndexAndByIdKeepThePositionsAndIdsAsked) {
  const TempRun run = make_temp_run("select_trains");
  const DataCollection dc = RunDirectory(run.dir);
  const DataCollection part = dc.select_trains(by_index(10, 20));
  EXPECT_EQ(part.train_ids(), std::vector<std::uint64_t>(dc.train_ids().begin() + 10, dc.train_ids().begin() + 20));
  const DataCollection ids = dc.select_trains(by_id(10005, 10010));
  EXPECT_THAT(ids.train_ids(), ElementsAre(10005, 10006, 10007, 10008, 10009));
  EXPECT_TRUE(dc.select_trains(by_id(1, 5)).train_ids().empty());
  EXPECT_EQ(dc.select_trains(by_index(60, 1000)).size(), 4u);
  EXPECT_THAT(dc.select_trains(by_id({10050, 3, 10002})).train_ids(), ElementsAre(10002, 10050));
  const auto kd = part.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  const auto nested = kd.select_trains(by_index(2, 4));
  EXPECT_THAT(nested.train_ids(), ElementsAre(10012, 10013));
  EXPECT_THAT(nested.data_counts(), ElementsAre(mock::camera_count(10012), mock::camera_count(10013)));
}

TEST(XfelTrainData, HasAndGetGiveThisTrainsRowsAndZeroRowsForEmptyTrains) {
  const mock::RunSpec spec;
  const TempRun run = make_temp_run("traindata", spec);
  const DataCollection sel = RunDirectory(run.dir).select({{mock::kCameraOutput, "*"}, {mock::kXgm, "*"}});
  SerialContext ctx;
  std::size_t visited = 0;
  ctx.map(
      [&](int, std::size_t index, std::uint64_t tid, const TrainData& data) {
        EXPECT_EQ(sel.train_ids()[index], tid);
        EXPECT_EQ(data.train_id(), tid);
        EXPECT_EQ(data.has(mock::kCameraOutput, "data.image.pixels"), mock::camera_count(tid) > 0);
        EXPECT_FALSE(data.has(mock::kDetector, "image.data"));
        const Array<std::uint16_t> image = data.get<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
        ASSERT_EQ(image.ndim(), 3u);
        EXPECT_EQ(image.shape()[0], mock::camera_count(tid));
        if (image.shape()[0] > 0) {
          EXPECT_EQ(image(0, 1, 2), mock::camera_pixel(tid, 0, spec.image_width + 2));
        }
        const Array<float> flux = data.get<float>(mock::kXgm, "pulseEnergy.photonFlux");
        ASSERT_EQ(flux.size(), 1u);
        EXPECT_EQ(flux[0], mock::xgm_photon_flux(tid));
        EXPECT_THROW(data.get<float>(mock::kDetector, "image.data"), std::invalid_argument);
        ++visited;
      },
      sel);
  EXPECT_EQ(visited, spec.num_trains);
}

TEST(XfelBadInput, AMissingDirectoryOrFileIsAFormatError) {
  const std::string missing = testing::fresh_dir("missing") + "/r9999";
  EXPECT_THAT(format_error_of([&] { RunDirectory(missing); }), HasSubstr("r9999"));
  EXPECT_THAT(format_error_of([&] { H5File(missing + "/RAW-R9999-DA01-S00000.h5"); }), HasSubstr("RAW-R9999"));
  EXPECT_THAT(format_error_of([&] { RunDirectory(testing::fresh_dir("empty")); }), HasSubstr("no usable run files"));
}

TEST(XfelBadInput, ANonHdf5FileIsAFormatErrorUnlessSkippingIsAsked) {
  const TempRun run = make_temp_run("not_hdf5");
  const std::string bogus = run.dir + "/RAW-R0450-DA02-S00000.h5";
  std::ofstream(bogus) << "this is not an HDF5 file\n";
  EXPECT_THAT(format_error_of([&] { H5File(bogus); }), HasSubstr("RAW-R0450-DA02-S00000.h5: not an HDF5 file"));
  EXPECT_THAT(format_error_of([&] { RunDirectory(run.dir); }), HasSubstr("DA02"));
  const DataCollection dc = RunDirectory(run.dir, {.skip_unreadable_files = true});
  EXPECT_EQ(dc.files().size(), 5u);
  ASSERT_EQ(dc.skipped_files().size(), 1u);
  EXPECT_EQ(dc.skipped_files()[0].first, bogus);
}

TEST(XfelBadInput, AFileWithoutIndexOrMetadataIsAFormatErrorNamingTheGroup) {
  const TempRun run = make_temp_run("no_index");
  delete_link(run.files[0], "INDEX");
  delete_link(run.files[1], "METADATA");
  const std::string no_index = format_error_of([&] { H5File(run.files[0]); });
  EXPECT_THAT(no_index, HasSubstr(run.files[0]));
  EXPECT_THAT(no_index, HasSubstr("INDEX"));
  const std::string no_metadata = format_error_of([&] { H5File(run.files[1]); });
  EXPECT_THAT(no_metadata, HasSubstr(run.files[1]));
  EXPECT_THAT(no_metadata, HasSubstr("METADATA"));
}

TEST(XfelBadInput, CountsPastTheDatasetEndAreAFormatErrorNotACrash) {
  const TempRun run = make_temp_run("past_end");
  // DA01-S00001 holds trains 10025..10049; give train 10030 far more rows than exist.
  overwrite_u64(run.files[1], "INDEX/FXE_XAD_GEC/CAM/CAMERA:daqOutput/data/count", 5, 1'000'000);
  const DataCollection dc = RunDirectory(run.dir);
  const std::string what =
      format_error_of([&] { dc.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels"); });
  EXPECT_THAT(what, HasSubstr("RAW-R0450-DA01-S00001.h5"));
  EXPECT_THAT(what, HasSubstr("INSTRUMENT/FXE_XAD_GEC/CAM/CAMERA:daqOutput/data/image/pixels"));
  // Trains before the bad one still read; the bad one fails through TrainData::get as well.
  const auto early = dc.select_trains(by_id(10000, 10025)).key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  EXPECT_GT(early.ndarray().size(), 0u);
  SerialContext ctx;
  EXPECT_THROW(ctx.map([&](int, std::size_t, std::uint64_t, const TrainData& data) {
    data.get<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  }, dc.select(mock::kCameraOutput).select_trains(by_id(10030, 10031))), WorkerError);
}

TEST(XfelBadInput, ATrainDuplicatedForOneSourceIsAnErrorWhenTheCollectionIsBuilt) {
  const TempRun run = make_temp_run("duplicate");
  std::filesystem::copy_file(run.files[0], run.dir + "/RAW-R0450-DA01-S00009.h5");
  const std::string what = format_error_of([&] { RunDirectory(run.dir); });
  EXPECT_THAT(what, HasSubstr("conflicting data"));
  EXPECT_THAT(what, HasSubstr("RAW-R0450-DA01-S00009.h5"));
}

TEST(XfelBadInput, AZeroTrainIdBeforeRealOnesIsAFormatError) {
  const TempRun run = make_temp_run("zero_inside");
  overwrite_u64(run.files[0], "INDEX/trainId", 3, 0);
  EXPECT_THAT(format_error_of([&] { H5File(run.files[0]); }), HasSubstr("INDEX/trainId"));
}

// The camera pixels of every train, read through KeyData::ndarray and through a map.
std::vector<std::uint16_t> camera_values(const std::string& dir) {
  const auto kd = RunDirectory(dir).key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  const Array<std::uint16_t> all = kd.ndarray();
  std::vector<std::uint16_t> values(all.begin(), all.end());
  SerialContext ctx;
  std::vector<std::uint16_t> mapped;
  ctx.map([&](int, std::size_t, std::uint64_t, Array<std::uint16_t> rows) { mapped.insert(mapped.end(), rows.begin(), rows.end()); },
          kd);
  EXPECT_EQ(mapped, values) << "map and ndarray disagree";
  return values;
}

mock::RunSpec spec_with(mock::RunSpec::Storage storage, bool checksummed = false) {
  mock::RunSpec spec;
  spec.data_storage = storage;
  spec.checksummed_format = checksummed;
  return spec;
}

TEST(XfelStorage, ContiguousDataInTheAskedTypeIsReadRawAnythingElseThroughHdf5) {
  for (const auto storage : {mock::RunSpec::Storage::contiguous, mock::RunSpec::Storage::chunked,
                             mock::RunSpec::Storage::compressed}) {
    const TempRun run = make_temp_run("storage_" + std::to_string(static_cast<int>(storage)), spec_with(storage));
    const auto file = detail::RunFile::open(run.files[0]);
    const auto& key = file->sources().at(mock::kCameraOutput).keys.at("data.image.pixels");
    const bool contiguous = storage == mock::RunSpec::Storage::contiguous;
    EXPECT_EQ(file->prepare(key, ElementType::u16).has_value(), contiguous);
    // Another type than the stored one needs HDF5's conversion.
    EXPECT_FALSE(file->prepare(key, ElementType::f64).has_value());
  }
}

TEST(XfelStorage, ContiguousChunkedAndCompressedDataGiveTheSameValuesBitForBit) {
  const mock::RunSpec spec;
  std::vector<std::uint16_t> expected;
  const auto kd_ids = expected_ids(spec);
  for (std::uint64_t tid : kd_ids) {
    for (std::uint64_t f = 0; f < mock::camera_count(tid); ++f) {
      for (std::size_t e = 0; e < spec.image_height * spec.image_width; ++e) expected.push_back(mock::camera_pixel(tid, f, e));
    }
  }
  for (const auto storage : {mock::RunSpec::Storage::contiguous, mock::RunSpec::Storage::chunked,
                             mock::RunSpec::Storage::compressed}) {
    SCOPED_TRACE("storage " + std::to_string(static_cast<int>(storage)));
    const TempRun run = make_temp_run("same_" + std::to_string(static_cast<int>(storage)), spec_with(storage));
    for (const std::uint64_t map_from : {std::uint64_t{1}, std::numeric_limits<std::uint64_t>::max()}) {
      SCOPED_TRACE("rows mapped from " + std::to_string(map_from) + " bytes");
      const testing::ScopedMapThreshold mapped(map_from);
      EXPECT_EQ(camera_values(run.dir), expected);
    }
  }
}

// The file that the mapping holding `address` maps ("" if none), from /proc/self/maps.
std::string mapping_path_of(const void* address) {
  std::ifstream maps("/proc/self/maps");
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  for (std::string line; std::getline(maps, line);) {
    unsigned long long begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &begin, &end) != 2 || at < begin || at >= end) continue;
    const std::size_t path = line.find('/');
    return path == std::string::npos ? "" : line.substr(path);
  }
  return "";
}

TEST(XfelKeyData, StoredTypesAreReportedForNumericKeysAndNoneForStrings) {
  const TempRun run = make_temp_run("stored_types");
  const DataCollection dc = RunDirectory(run.dir);
  EXPECT_EQ(dc.stored_type(mock::kCameraOutput, "data.image.pixels"), ElementType::u16);
  EXPECT_EQ(dc.stored_type(mock::kXgm, "pulseEnergy.photonFlux"), ElementType::f32);  // ".value" implied
  EXPECT_EQ(dc.stored_type(mock::kXgm, "current.bottom.rangeCode.value"), ElementType::i32);
  EXPECT_EQ(dc.stored_type(mock::kXgm, "state.value"), std::nullopt);
  EXPECT_THROW(dc.stored_type(mock::kXgm, "no.such.key"), std::invalid_argument);
  EXPECT_STREQ(element_type_name(ElementType::u16), "uint16");
  const std::size_t bytes = visit_element_type(ElementType::f64, []<class T>() { return sizeof(T); });
  EXPECT_EQ(bytes, 8u);
}

TEST(XfelKeyData, RowsOfATrainOwnTheirMemoryMappedOrReadAndOutliveTheCollection) {
  const std::vector<std::uint16_t> expected = [] {
    const TempRun run = make_temp_run("rows_expected");
    return camera_values(run.dir);
  }();
  for (const std::uint64_t threshold : {std::uint64_t{1}, std::uint64_t{1} << 40}) {  // mapped, then read
    const testing::ScopedMapThreshold scoped(threshold);
    const TempRun run = make_temp_run("rows_of_train");
    std::vector<Array<std::uint16_t>> kept;
    std::vector<std::uint64_t> counts;
    {
      const auto kd = RunDirectory(run.dir).key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
      counts = kd.data_counts();
      for (std::size_t i = 0; i < kd.size(); ++i) kept.push_back(kd.rows_of_train(i));
      std::size_t in_the_file = 0;
      for (const auto& rows : kept) in_the_file += rows.size() > 0 && mapping_path_of(rows.data()).starts_with(run.dir);
      if (threshold == 1) {
        EXPECT_GT(in_the_file, 0u);
      } else {
        EXPECT_EQ(in_the_file, 0u);
      }
    }  // the collection is gone; the rows stay
    std::vector<std::uint16_t> values;
    for (std::size_t i = 0; i < kept.size(); ++i) {
      ASSERT_EQ(kept[i].shape()[0], counts[i]) << "train " << i;
      values.insert(values.end(), kept[i].begin(), kept[i].end());
    }
    EXPECT_EQ(values, expected) << "threshold " << threshold;
  }
}

TEST(XfelFileWindow, MappingsLargerThanTheArenaAndThoseAfterThemStayWithinTheReservedRange) {
  // A sparse file a little over 66 MiB, with a marker every MiB.
  const std::string path = testing::fresh_dir("window") + "/big";
  const std::uint64_t size = (std::uint64_t{66} << 20) + 5000;
  {
    std::ofstream out(path, std::ios::binary);
    for (std::uint64_t mib = 0; mib < 66; ++mib) {
      out.seekp(static_cast<std::streamoff>(mib << 20));
      out.write(reinterpret_cast<const char*>(&mib), sizeof mib);
    }
    out.seekp(static_cast<std::streamoff>(size - 1));
    out.put('\0');
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  detail::FileWindow window;
  const auto marker_at = [&](std::uint64_t mib, std::uint64_t bytes) {
    const void* p = window.map(fd, path, mib << 20, bytes, "markers");
    EXPECT_TRUE(p != nullptr && window.holds(p, bytes)) << "MiB " << mib << ", " << bytes << " bytes";
    std::uint64_t value = ~std::uint64_t{0};
    if (p != nullptr) std::memcpy(&value, p, sizeof value);
    return value;
  };
  // Up to the end of the file: longer than the arena, and not a whole number of 2 MiB pieces.
  EXPECT_EQ(marker_at(1, size - (std::uint64_t{1} << 20)), 1u);
  for (std::uint64_t mib : {3u, 9u, 10u, 40u, 65u, 2u}) EXPECT_EQ(marker_at(mib, 8), mib);
  EXPECT_EQ(marker_at(0, std::uint64_t{30} << 20), 0u);
  for (std::uint64_t mib : {33u, 64u}) EXPECT_EQ(marker_at(mib, 8), mib);
  ::close(fd);
}

TEST(XfelStorage, AKernelWritingIntoMappedRowsChangesNeitherTheFileNorLaterReads) {
  const TempRun run = make_temp_run("mapped_writes");
  const auto file_bytes = [&] {
    std::ifstream in(run.files[0], std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::string before = file_bytes();
  const std::vector<std::uint16_t> expected = camera_values(run.dir);
  const testing::ScopedMapThreshold mapped(1);
  const auto kd = RunDirectory(run.dir).key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  SerialContext ctx;
  std::size_t rows_seen = 0, rows_in_a_mapping_of_the_file = 0;
  for (int pass = 0; pass < 2; ++pass) {
    ctx.map(
        [&](int, std::size_t, std::uint64_t, Array<std::uint16_t> rows) {
          if (rows.size() == 0) return;
          ++rows_seen;
          if (mapping_path_of(rows.data()).starts_with(run.dir)) ++rows_in_a_mapping_of_the_file;
          std::fill(rows.begin(), rows.end(), 0xffff);
        },
        kd);
  }
  EXPECT_GT(rows_seen, 0u);
  EXPECT_EQ(rows_in_a_mapping_of_the_file, rows_seen);
  EXPECT_EQ(camera_values(run.dir), expected);
  EXPECT_TRUE(file_bytes() == before) << "the file changed";
}

// Replaces the first occurrence of `from` in the file's bytes by `to` (same length).
void patch_bytes(const std::string& path, const std::string& from, const std::string& to) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t at = bytes.find(from);
  ASSERT_NE(at, std::string::npos) << "pattern not in " << path;
  bytes.replace(at, from.size(), to);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(XfelBadInput, ADataOffsetPastTheFileEndIsAFormatErrorNotAReadPastTheEnd) {
  const TempRun run = make_temp_run("bad_offset");
  std::uint64_t offset = 0;
  {
    const hid_t f = H5Fopen(run.files[0].c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t ds = H5Dopen2(f, "INSTRUMENT/FXE_XAD_GEC/CAM/CAMERA:daqOutput/data/image/pixels", H5P_DEFAULT);
    offset = H5Dget_offset(ds);
    H5Dclose(ds);
    H5Fclose(f);
  }
  ASSERT_GT(offset, 0u);
  // The layout message stores the data's address as 8 little-endian bytes; point it far past the end.
  std::string from(8, '\0'), to(8, '\0');
  for (int b = 0; b < 8; ++b) from[static_cast<std::size_t>(b)] = static_cast<char>((offset >> (8 * b)) & 0xff);
  const std::uint64_t damaged = offset + (std::uint64_t{1} << 40);
  for (int b = 0; b < 8; ++b) to[static_cast<std::size_t>(b)] = static_cast<char>((damaged >> (8 * b)) & 0xff);
  patch_bytes(run.files[0], from, to);
  const std::string what = format_error_of([&] {
    RunDirectory(run.dir).key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");
  });
  EXPECT_THAT(what, HasSubstr(run.files[0]));
  EXPECT_THAT(what, HasSubstr("INSTRUMENT/FXE_XAD_GEC/CAM/CAMERA:daqOutput/data/image/pixels"));
}

class XfelTruncated : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(XfelTruncated, AFileTruncatedAfterItWasOpenedIsAFormatErrorNotAReadPastTheEnd) {
  const testing::ScopedMapThreshold mapped(GetParam());
  const TempRun run = make_temp_run("truncated_later");
  const DataCollection dc = RunDirectory(run.dir);
  const auto kd = dc.key_data<std::uint16_t>(mock::kCameraOutput, "data.image.pixels");  // validated here
  std::filesystem::resize_file(run.files[0], std::filesystem::file_size(run.files[0]) / 2);
  SerialContext ctx;
  try {
    ctx.map([](int, std::size_t, std::uint64_t, Array<std::uint16_t>) {}, kd);
    FAIL() << "no exception";
  } catch (const WorkerError& e) {
    EXPECT_THAT(e.what(), HasSubstr(run.files[0]));
    EXPECT_THAT(e.what(), HasSubstr("truncated"));
    EXPECT_THROW(std::rethrow_if_nested(e), FormatError);
  }
}

INSTANTIATE_TEST_SUITE_P(ReadOrMapped, XfelTruncated,
                         ::testing::Values(std::numeric_limits<std::uint64_t>::max(), std::uint64_t{1}),
                         [](const auto& info) { return info.param == 1 ? "Mapped" : "Read"; });

TEST(XfelFiles, CloseDropsHandlesAndLaterReadsReopen) {
  const TempRun run = make_temp_run("close");
  const DataCollection dc = RunDirectory(run.dir);
  const auto kd = dc.key_data<std::uint16_t>(mock::kDetector, "image.data");
  const auto first = kd.ndarray();
  dc.close();
  const auto second = kd.ndarray();
  ASSERT_EQ(first.size(), second.size());
  EXPECT_TRUE(std::equal(first.begin(), first.end(), second.begin()));
}

}  // namespace
}  // namespace pasha::xfel
