#include "python/src/error_area.h"

#include <algorithm>
#include <cstring>

namespace pasha::python {

std::uint64_t ErrorArea::new_generation() {
  if (!memory_) {
    const auto workers = static_cast<std::size_t>(context_.num_workers());
    memory_ = context_.alloc_raw(Shape{workers * kSlotBytes}, 1, Order::C, false).memory;
  }
  return ++generation_;
}

unsigned char* ErrorArea::slot(int worker) const noexcept {
  if (!memory_ || worker < 0 || worker >= context_.num_workers()) return nullptr;
  return static_cast<unsigned char*>(memory_.get()) + static_cast<std::size_t>(worker) * kSlotBytes;
}

void ErrorArea::write(int worker, std::uint64_t generation, std::string_view payload) noexcept {
  unsigned char* at = slot(worker);
  if (at == nullptr) return;
  const std::uint64_t length = std::min<std::size_t>(payload.size(), kPayloadBytes);
  std::memcpy(at + 2 * sizeof(std::uint64_t), payload.data(), length);
  std::memcpy(at + sizeof(std::uint64_t), &length, sizeof(length));
  std::memcpy(at, &generation, sizeof(generation));
}

std::string ErrorArea::read(int worker, std::uint64_t generation) const {
  const unsigned char* at = slot(worker);
  if (at == nullptr) return {};
  std::uint64_t written = 0, length = 0;
  std::memcpy(&written, at, sizeof(written));
  std::memcpy(&length, at + sizeof(std::uint64_t), sizeof(length));
  if (written != generation || length > kPayloadBytes) return {};
  return std::string(reinterpret_cast<const char*>(at + 2 * sizeof(std::uint64_t)), length);
}

}  // namespace pasha::python
