#include "functors/xfel/testing/make_run.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "functors/xfel/detail/hdf5.h"

namespace pasha::xfel::mock {
namespace {

using detail::Handle;

std::size_t round_up(std::size_t n, std::size_t multiple) {
  return multiple == 0 ? n : (n + multiple - 1) / multiple * multiple;
}

class Writer {
 public:
  Writer(const std::string& path, const RunSpec& spec)
      : path_(path), fixed_strings_(spec.fixed_length_strings), fapl_(H5Pcreate(H5P_FILE_ACCESS), H5Pclose),
        lcpl_(H5Pcreate(H5P_LINK_CREATE), H5Pclose) {
    if (spec.checksummed_format) H5Pset_libver_bounds(fapl_.get(), H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    file_ = Handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl_.get()), H5Fclose);
    if (!file_.valid() || !lcpl_.valid()) throw std::runtime_error(path + ": cannot create HDF5 file");
    H5Pset_create_intermediate_group(lcpl_.get(), 1);
  }

  // A dataset with `data`; `storage` says how bulk data is laid out (small datasets are contiguous).
  void dataset(const std::string& path, hid_t type, const std::vector<hsize_t>& dims, const void* data,
               RunSpec::Storage storage = RunSpec::Storage::contiguous) {
    Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
    Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    if (storage != RunSpec::Storage::contiguous && !dims.empty() && dims[0] > 0) {
      std::vector<hsize_t> chunk(dims.begin(), dims.end());
      chunk[0] = 1;
      H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data());
      if (storage == RunSpec::Storage::compressed) H5Pset_deflate(dcpl.get(), 1);
    }
    Handle ds(H5Dcreate2(file_.get(), path.c_str(), type, space.get(), lcpl_.get(), dcpl.get(), H5P_DEFAULT), H5Dclose);
    if (!space.valid() || !ds.valid()) throw std::runtime_error(path_ + ": cannot create dataset " + path);
    hsize_t n = 1;
    for (hsize_t d : dims) n *= d;
    if (n > 0 && H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
      throw std::runtime_error(path_ + ": cannot write dataset " + path);
    }
  }

  template <class T>
  void dataset(const std::string& path, hid_t type, const std::vector<hsize_t>& dims, const std::vector<T>& data,
               RunSpec::Storage storage = RunSpec::Storage::contiguous) {
    dataset(path, type, dims, static_cast<const void*>(data.data()), storage);
  }

  void strings(const std::string& path, const std::vector<std::string>& values) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    if (fixed_strings_) {
      std::size_t width = 1;
      for (const std::string& s : values) width = std::max(width, s.size());
      std::vector<char> buffer(values.size() * width, '\0');
      for (std::size_t i = 0; i < values.size(); ++i) std::copy(values[i].begin(), values[i].end(), buffer.begin() + i * width);
      H5Tset_size(type.get(), width);
      H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
      dataset(path, type.get(), {values.size()}, static_cast<const void*>(buffer.data()));
      return;
    }
    H5Tset_size(type.get(), H5T_VARIABLE);
    std::vector<const char*> pointers;
    for (const std::string& s : values) pointers.push_back(s.c_str());
    dataset(path, type.get(), {values.size()}, static_cast<const void*>(pointers.data()));
  }

 private:
  std::string path_;
  bool fixed_strings_;
  Handle fapl_;
  Handle file_;
  Handle lcpl_;
};

// first/count (or first/last/status) of one index group, padded to `padded` entries.
void write_index(Writer& w, const RunSpec& spec, const std::string& path, const std::vector<std::uint64_t>& counts,
                 std::size_t padded) {
  std::vector<std::uint64_t> first(padded, 0), count(padded, 0);
  std::uint64_t row = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    first[i] = row;
    count[i] = counts[i];
    row += counts[i];
  }
  if (spec.old_index) {
    std::vector<std::uint64_t> last(padded, 0);
    std::vector<std::uint32_t> status(padded, 0);
    for (std::size_t i = 0; i < counts.size(); ++i) {
      last[i] = counts[i] > 0 ? first[i] + counts[i] - 1 : first[i];
      status[i] = counts[i] > 0 ? 1 : 0;
    }
    w.dataset(path + "/first", H5T_STD_U64LE, {padded}, first);
    w.dataset(path + "/last", H5T_STD_U64LE, {padded}, last);
    w.dataset(path + "/status", H5T_STD_U32LE, {padded}, status);
  } else {
    w.dataset(path + "/first", H5T_STD_U64LE, {padded}, first);
    w.dataset(path + "/count", H5T_STD_U64LE, {padded}, count);
  }
}

void write_file(const std::string& path, const RunSpec& spec, bool da, std::uint64_t t0, std::size_t n, int sequence) {
  Writer w(path, spec);
  const bool v05 = spec.version == "0.5";
  const std::size_t npad = round_up(n, spec.pad_to);

  std::vector<std::uint64_t> ids(npad, 0);
  for (std::size_t i = 0; i < n; ++i) ids[i] = t0 + i;
  w.dataset("INDEX/trainId", H5T_STD_U64LE, {npad}, ids);
  if (!v05) {
    const bool inverted = spec.version == "1.1";
    std::vector<std::int32_t> flag(npad, 0);
    std::vector<std::uint64_t> timestamp(npad, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const bool suspect = std::count(spec.suspect_trains.begin(), spec.suspect_trains.end(), ids[i]) > 0;
      flag[i] = (suspect != inverted) ? 0 : 1;
      timestamp[i] = 1'600'000'000'000'000'000ull + ids[i] * 100'000'000ull;
    }
    w.dataset("INDEX/flag", H5T_STD_I32LE, {npad}, flag);
    w.dataset("INDEX/timestamp", H5T_STD_U64LE, {npad}, timestamp);
    if (spec.version >= "1.2") w.dataset("INDEX/origin", H5T_STD_I32LE, {npad}, std::vector<std::int32_t>(npad, -1));
  }

  std::vector<std::string> roots, devices;
  auto add_source = [&](const std::string& root, const std::string& device) {
    roots.push_back(root);
    devices.push_back(device);
  };

  auto control = [&](const std::string& source, auto&& keys) {
    add_source("CONTROL", source);
    write_index(w, spec, "INDEX/" + source, std::vector<std::uint64_t>(n, 1), npad);
    keys("CONTROL/" + source + "/");
    w.strings("RUN/" + source + "/classId/value", {da && source == kXgm ? "DoocsXGM" : "GECCamera"});
  };
  auto timestamps = [&](const std::string& key_path) {
    std::vector<std::uint64_t> t(n);
    for (std::size_t i = 0; i < n; ++i) t[i] = 1'600'000'000'000'000'000ull + ids[i];
    w.dataset(key_path + "/timestamp", H5T_STD_U64LE, {n}, t);
  };
  // An instrument group: `counts` rows per train; `leaves(base, rows, padded_rows)` writes the datasets.
  auto instrument = [&](const std::string& source, const std::string& group, std::uint64_t (*count_of)(std::uint64_t),
                        auto&& leaves) {
    add_source("INSTRUMENT", source + "/" + group);
    std::vector<std::uint64_t> counts(n);
    std::vector<std::uint64_t> row_train;
    for (std::size_t i = 0; i < n; ++i) {
      counts[i] = count_of(ids[i]);
      for (std::uint64_t r = 0; r < counts[i]; ++r) row_train.push_back(ids[i]);
    }
    write_index(w, spec, "INDEX/" + source + "/" + group, counts, npad);
    leaves("INSTRUMENT/" + source + "/" + group + "/", row_train, round_up(row_train.size(), spec.pad_to));
  };
  auto frame_index = [](const std::vector<std::uint64_t>& row_train, std::size_t r) {
    std::uint64_t frame = 0;
    while (frame < r && row_train[r - frame - 1] == row_train[r]) ++frame;
    return frame;
  };

  if (da) {
    control(kXgm, [&](const std::string& base) {
      std::vector<float> flux(n), ix(n);
      std::vector<std::int32_t> range(n);
      std::vector<std::string> state(n);
      for (std::size_t i = 0; i < n; ++i) {
        flux[i] = xgm_photon_flux(ids[i]);
        ix[i] = 0.125f * static_cast<float>(i);
        range[i] = xgm_range_code(ids[i]);
        state[i] = ids[i] < spec.first_train + 5 ? "OFF" : "ON";
      }
      w.dataset(base + "pulseEnergy/photonFlux/value", H5T_IEEE_F32LE, {n}, flux);
      timestamps(base + "pulseEnergy/photonFlux");
      w.dataset(base + "beamPosition/ixPos/value", H5T_IEEE_F32LE, {n}, ix);
      timestamps(base + "beamPosition/ixPos");
      w.dataset(base + "current/bottom/rangeCode/value", H5T_STD_I32LE, {n}, range);
      timestamps(base + "current/bottom/rangeCode");
      w.strings(base + "state/value", state);
      timestamps(base + "state");
    });
    instrument(kXgmOutput, "data", [](std::uint64_t) -> std::uint64_t { return 1; },
               [&](const std::string& base, const std::vector<std::uint64_t>& row_train, std::size_t rows) {
                 std::vector<float> intensity(rows * kXgmIntensityLength, 0.0f);
                 std::vector<std::uint64_t> tid(rows, 0);
                 for (std::size_t r = 0; r < row_train.size(); ++r) {
                   tid[r] = row_train[r];
                   for (std::size_t e = 0; e < kXgmIntensityLength; ++e) {
                     intensity[r * kXgmIntensityLength + e] = xgm_intensity(row_train[r], e);
                   }
                 }
                 w.dataset(base + "intensityTD", H5T_IEEE_F32LE, {rows, kXgmIntensityLength}, intensity);
                 w.dataset(base + "trainId", H5T_STD_U64LE, {rows}, tid);
               });
    control(kCamera, [&](const std::string& base) {
      std::vector<double> exposure(n, 0.5);
      w.dataset(base + "exposureTime/value", H5T_IEEE_F64LE, {n}, exposure);
      timestamps(base + "exposureTime");
    });
    instrument(kCameraOutput, "data", camera_count,
               [&](const std::string& base, const std::vector<std::uint64_t>& row_train, std::size_t rows) {
                 const std::size_t pixels = spec.image_height * spec.image_width;
                 std::vector<std::uint16_t> image(rows * pixels, 0);
                 std::vector<std::uint64_t> tid(rows, 0);
                 for (std::size_t r = 0; r < row_train.size(); ++r) {
                   tid[r] = row_train[r];
                   const std::uint64_t frame = frame_index(row_train, r);
                   for (std::size_t e = 0; e < pixels; ++e) image[r * pixels + e] = camera_pixel(row_train[r], frame, e);
                 }
                 w.dataset(base + "image/pixels", H5T_STD_U16LE, {rows, spec.image_height, spec.image_width}, image,
                           spec.data_storage);
                 w.dataset(base + "trainId", H5T_STD_U64LE, {rows}, tid);
               });
  } else {
    instrument(kDetector, "image", detector_count,
               [&](const std::string& base, const std::vector<std::uint64_t>& row_train, std::size_t rows) {
                 const std::size_t pixels = spec.module_pixels * spec.module_pixels;
                 std::vector<std::uint16_t> data(rows * pixels, 0), cell(rows, 0);
                 std::vector<std::uint64_t> tid(rows, 0);
                 for (std::size_t r = 0; r < row_train.size(); ++r) {
                   tid[r] = row_train[r];
                   const std::uint64_t frame = frame_index(row_train, r);
                   cell[r] = static_cast<std::uint16_t>(frame);
                   for (std::size_t e = 0; e < pixels; ++e) data[r * pixels + e] = detector_pixel(row_train[r], frame, e);
                 }
                 w.dataset(base + "data", H5T_STD_U16LE, {rows, 1, spec.module_pixels, spec.module_pixels}, data,
                           spec.data_storage);
                 w.dataset(base + "cellId", H5T_STD_U16LE, {rows, 1}, cell);
                 w.dataset(base + "trainId", H5T_STD_U64LE, {rows, 1}, tid);
               });
    instrument(kDetector, "header", [](std::uint64_t) -> std::uint64_t { return 1; },
               [&](const std::string& base, const std::vector<std::uint64_t>& row_train, std::size_t rows) {
                 std::vector<std::uint64_t> tid(rows, 0), pulses(rows, 0);
                 for (std::size_t r = 0; r < row_train.size(); ++r) {
                   tid[r] = row_train[r];
                   pulses[r] = detector_count(row_train[r]);
                 }
                 w.dataset(base + "pulseCount", H5T_STD_U64LE, {rows}, pulses);
                 w.dataset(base + "trainId", H5T_STD_U64LE, {rows}, tid);
               });
  }

  std::vector<std::string> source_ids;
  for (std::size_t i = 0; i < roots.size(); ++i) source_ids.push_back(roots[i] + "/" + devices[i]);
  if (!v05 && spec.version >= "1.1") {
    roots.push_back("Karabo_TimerServer");
    devices.push_back("SA1_BR_UTC/TSYS/TIMESERVER");
    source_ids.push_back("Karabo_TimerServer/SA1_BR_UTC/TSYS/TIMESERVER");
  }
  const std::size_t padded_sources = round_up(source_ids.size(), spec.pad_to);
  roots.resize(padded_sources);
  devices.resize(padded_sources);
  source_ids.resize(padded_sources);
  const std::string lists = v05 ? "METADATA/" : "METADATA/dataSources/";
  w.strings(lists + "dataSourceId", source_ids);
  w.strings(lists + "deviceId", devices);
  w.strings(lists + "root", roots);
  if (!v05) {
    w.strings("METADATA/dataFormatVersion", {spec.version});
    w.strings("METADATA/creationDate", {"20200101T000000Z"});
    w.strings("METADATA/daqLibrary", {"1.9.0"});
    const std::vector<std::uint32_t> proposal{700000}, run{static_cast<std::uint32_t>(spec.run_number)},
        seq{static_cast<std::uint32_t>(sequence)};
    w.dataset("METADATA/proposalNumber", H5T_STD_U32LE, {1}, proposal);
    w.dataset("METADATA/runNumber", H5T_STD_U32LE, {1}, run);
    w.dataset("METADATA/sequenceNumber", H5T_STD_U32LE, {1}, seq);
  }
}

}  // namespace

std::vector<std::string> write_run(const std::string& directory, const RunSpec& spec) {
  if (spec.version != "0.5" && spec.version != "1.0" && spec.version != "1.1" && spec.version != "1.2") {
    throw std::invalid_argument("make_run: unsupported format version '" + spec.version + "'");
  }
  if (spec.num_trains == 0 || spec.da_trains_per_file == 0 || spec.det_trains_per_file == 0) {
    throw std::invalid_argument("make_run: trains and trains per file must be positive");
  }
  const detail::Hdf5Guard guard;
  std::vector<std::string> paths;
  auto write_aggregator = [&](bool da, std::size_t per_file) {
    int sequence = 0;
    for (std::size_t begin = 0; begin < spec.num_trains; begin += per_file, ++sequence) {
      char name[64];
      std::snprintf(name, sizeof name, "RAW-R%04d-%s-S%05d.h5", spec.run_number, da ? "DA01" : "DET00", sequence);
      const std::string path = directory + "/" + name;
      write_file(path, spec, da, spec.first_train + begin, std::min(per_file, spec.num_trains - begin), sequence);
      paths.push_back(path);
    }
  };
  write_aggregator(true, spec.da_trains_per_file);
  if (spec.with_detector) write_aggregator(false, spec.det_trains_per_file);
  std::sort(paths.begin(), paths.end());
  return paths;
}

}  // namespace pasha::xfel::mock
