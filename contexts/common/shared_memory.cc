#include "contexts/common/shared_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>

#include "contexts/common/machine.h"

namespace pasha {
namespace {

// Unmaps a shared mapping (its full length) and forgets it.
struct Unmap {
  std::size_t length;
  std::weak_ptr<SharedMappings> registry;

  void operator()(void* address) const noexcept {
    if (const auto mappings = registry.lock()) mappings->remove(address);
    munmap(address, length);
  }
};

}  // namespace

std::shared_ptr<void> map_shared(std::size_t bytes) {
  const std::size_t page = page_size();
  const std::size_t wanted = std::max<std::size_t>(bytes, 1);
  if (wanted > SIZE_MAX - (page - 1)) {
    throw AllocationError("pasha::ProcessContext: cannot map " + std::to_string(bytes) +
                          " bytes of shared memory: the size is too large");
  }
  const std::size_t length = (wanted + page - 1) / page * page;
  void* memory = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    const int error = errno;
    throw AllocationError("pasha::ProcessContext: cannot map " + std::to_string(bytes) +
                          " bytes of shared memory: " + std::strerror(error));
  }
  // Transparent huge pages for shared memory, where the machine gives them on request
  // (/sys/kernel/mm/transparent_hugepage/shmem_enabled "advise", or "always"/"within_size" without
  // asking); refused, harmlessly, where it is "never".
  constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
  if (length >= kHugePageBytes) madvise(memory, length, MADV_HUGEPAGE);
  return std::shared_ptr<void>(memory, Unmap{length, {}});
}

std::shared_ptr<void> SharedMappings::allocate(std::size_t bytes) {
  std::shared_ptr<void> memory = map_shared(bytes);  // unmaps on its own if what follows throws
  Unmap& unmap = *std::get_deleter<Unmap>(memory);
  {
    std::lock_guard lock(mutex_);
    live_.emplace(memory.get(), unmap.length);
  }
  unmap.registry = weak_from_this();
  return memory;
}

void SharedMappings::remove(void* address) noexcept {
  std::lock_guard lock(mutex_);
  live_.erase(address);
}

std::vector<SharedMappings::Region> SharedMappings::snapshot(std::size_t min_length) {
  std::vector<Region> regions;
  std::lock_guard lock(mutex_);
  for (const auto& [address, length] : live_) {
    if (length >= min_length) regions.push_back({static_cast<char*>(address), length});
  }
  return regions;
}

void populate_slices(const std::vector<SharedMappings::Region>& regions, int worker_id, int num_workers) noexcept {
  const std::size_t page = page_size();
  constexpr std::size_t kPagesPerQuery = 4096;
  unsigned char resident[kPagesPerQuery];
  for (const auto& region : regions) {
    const auto cut = [&](int w) {
      const auto bytes = static_cast<unsigned __int128>(region.length) * static_cast<unsigned>(w) /
                         static_cast<unsigned>(num_workers);
      return static_cast<std::size_t>(bytes) / page * page;
    };
    const std::size_t begin = cut(worker_id);
    const std::size_t end = worker_id + 1 == num_workers ? region.length : cut(worker_id + 1);
    for (std::size_t query = begin; query < end; query += kPagesPerQuery * page) {
      const std::size_t pages = std::min(kPagesPerQuery, (end - query) / page);
      char* const base = region.address + query;
      if (mincore(base, pages * page, resident) != 0) return;
      for (std::size_t first = 0; first < pages;) {
        if ((resident[first] & 1) == 0) {
          ++first;
          continue;
        }
        std::size_t last = first;
        while (last < pages && (resident[last] & 1) != 0) ++last;
        if (madvise(base + first * page, (last - first) * page, MADV_POPULATE_READ) != 0 && errno == EINVAL) {
          return;  // a kernel older than 5.14: page faults will do
        }
        first = last;
      }
    }
  }
}

}  // namespace pasha
