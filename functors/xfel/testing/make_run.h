// A synthetic European XFEL run, written like the DAQ writes one, for tests, benchmarks and demos
// (after EXtra-data's tests/make_examples.py). The binary //tools/xfel:make_run wraps write_run.
//
// The run has two aggregators whose sequence files split at different trains:
//   RAW-R<run>-DA01-S<seq>.h5:  CONTROL  SA1_XTD2_XGM/DOOCS/MAIN          (one value per train)
//                               INSTRUMENT SA1_XTD2_XGM/DOOCS/MAIN:output  group data, 1 row per train
//                               CONTROL  FXE_XAD_GEC/CAM/CAMERA
//                               INSTRUMENT FXE_XAD_GEC/CAM/CAMERA:daqOutput group data,
//                                        camera_count(train) images per train (0 for every 4th train)
//   RAW-R<run>-DET00-S<seq>.h5: INSTRUMENT FXE_DET_LPD1M-1/DET/0CH0:xtdf groups image
//                                        (detector_count(train) frames) and header (1 row per train)
// Train ids, index arrays, source lists and instrument datasets are padded with zeros (or empty
// strings) to a multiple of RunSpec::pad_to. The values are the functions below of (train, row,
// element), so readers can check every number.
#ifndef PASHA_FUNCTORS_XFEL_TESTING_MAKE_RUN_H_
#define PASHA_FUNCTORS_XFEL_TESTING_MAKE_RUN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pasha::xfel::mock {

inline constexpr char kXgm[] = "SA1_XTD2_XGM/DOOCS/MAIN";
inline constexpr char kXgmOutput[] = "SA1_XTD2_XGM/DOOCS/MAIN:output";
inline constexpr char kCamera[] = "FXE_XAD_GEC/CAM/CAMERA";
inline constexpr char kCameraOutput[] = "FXE_XAD_GEC/CAM/CAMERA:daqOutput";
inline constexpr char kDetector[] = "FXE_DET_LPD1M-1/DET/0CH0:xtdf";

struct RunSpec {
  // "0.5", "1.0", "1.1" (flag inverted) or "1.2" (adds INDEX/origin).
  std::string version = "1.0";
  // The old index form: first/last/status instead of first/count.
  bool old_index = false;
  std::uint64_t first_train = 10000;
  std::size_t num_trains = 64;
  std::size_t da_trains_per_file = 25;
  std::size_t det_trains_per_file = 40;
  std::size_t pad_to = 16;
  std::size_t image_height = 32;
  std::size_t image_width = 40;
  std::size_t module_pixels = 16;  // detector frames are (1, module_pixels, module_pixels)
  // Trains flagged as suspect in INDEX/flag (versions >= 1.0).
  std::vector<std::uint64_t> suspect_trains;
  int run_number = 450;
  // Strings as fixed-length instead of variable-length (HDF5 reads both).
  bool fixed_length_strings = false;
  // Write with the newest HDF5 file format (H5F_LIBVER_LATEST), whose metadata carries checksums,
  // instead of the oldest format the DAQ uses.
  bool checksummed_format = false;
  // How the image and detector data are stored: contiguous (as the DAQ writes them, and as pasha can
  // read without HDF5), chunked one row per chunk, or chunked and compressed (deflate).
  enum class Storage { contiguous, chunked, compressed };
  Storage data_storage = Storage::contiguous;
  // Write the detector aggregator (DET00 files) too.
  bool with_detector = true;
};

// Writes the run's files into `directory` (which must exist) and returns their paths, sorted.
// Throws std::runtime_error when HDF5 fails.
std::vector<std::string> write_run(const std::string& directory, const RunSpec& spec = {});

// The values written.
inline std::uint64_t camera_count(std::uint64_t train_id) { return train_id % 4; }
inline std::uint16_t camera_pixel(std::uint64_t train_id, std::uint64_t row, std::size_t element) {
  return static_cast<std::uint16_t>(train_id * 31 + row * 7 + element);
}
inline std::uint64_t detector_count(std::uint64_t train_id) { return train_id % 5 == 0 ? 0 : 2 + train_id % 3; }
inline std::uint16_t detector_pixel(std::uint64_t train_id, std::uint64_t frame, std::size_t element) {
  return static_cast<std::uint16_t>(train_id + 3 * frame + element);
}
inline float xgm_photon_flux(std::uint64_t train_id) { return static_cast<float>(train_id % 1000) * 0.5f; }
inline std::int32_t xgm_range_code(std::uint64_t train_id) { return static_cast<std::int32_t>(train_id % 7); }
inline float xgm_intensity(std::uint64_t train_id, std::size_t element) {
  return static_cast<float>(train_id % 100) + 0.25f * static_cast<float>(element);
}
inline constexpr std::size_t kXgmIntensityLength = 20;

}  // namespace pasha::xfel::mock

#endif  // PASHA_FUNCTORS_XFEL_TESTING_MAKE_RUN_H_
