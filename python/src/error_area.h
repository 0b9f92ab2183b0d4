// Where a worker process leaves what its Python exception was, for the caller to raise it as it was:
// one fixed-size slot per worker in memory the context's workers share with the caller (an exception
// object cannot cross a process boundary; its pickle can). Internal to the `pasha` Python package.
#ifndef PASHA_PYTHON_SRC_ERROR_AREA_H_
#define PASHA_PYTHON_SRC_ERROR_AREA_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pasha/pasha.h"

namespace pasha::python {

class ErrorArea {
 public:
  // The most a slot holds of a failure's description.
  static constexpr std::size_t kSlotBytes = std::size_t{64} << 10;
  static constexpr std::size_t kPayloadBytes = kSlotBytes - 2 * sizeof(std::uint64_t);

  // Slots for `context`'s workers, in its memory (made on first use: untouched, it costs address
  // space only).
  explicit ErrorArea(Context& context) : context_(context) {}

  // A number for a new map; a slot written in an earlier map is not read for a later one.
  std::uint64_t new_generation();
  // Writes `payload` (cut to kPayloadBytes) into `worker`'s slot for map `generation`.
  void write(int worker, std::uint64_t generation, std::string_view payload) noexcept;
  // What `worker` wrote for map `generation`, or "" if nothing.
  std::string read(int worker, std::uint64_t generation) const;

 private:
  unsigned char* slot(int worker) const noexcept;

  Context& context_;
  std::shared_ptr<void> memory_;
  std::uint64_t generation_ = 0;
};

}  // namespace pasha::python

#endif  // PASHA_PYTHON_SRC_ERROR_AREA_H_
