// Memory a ProcessContext shares with its worker processes: anonymous MAP_SHARED mappings (nothing
// under /dev/shm, nothing outlives the process), the registry of the live ones, and mapping a
// worker's slice of them in ahead of its kernel. Internal to contexts/.
#ifndef PASHA_CONTEXTS_COMMON_SHARED_MEMORY_H_
#define PASHA_CONTEXTS_COMMON_SHARED_MEMORY_H_

#include <cstddef>
#include <map>
#include <memory>
#include <vector>

#include "pasha/core/backend.h"

namespace pasha {

// A new anonymous shared mapping of at least `bytes` bytes (whole pages), unmapped when the last copy
// of the pointer goes. Throws pasha::AllocationError naming the size and the OS's reason.
std::shared_ptr<void> map_shared(std::size_t bytes);

// The live arrays of one context, so that a worker can map its slice of them in up front. Entries are
// removed when their array is unmapped, in whichever process that happens; forked children keep a
// copy of the registry (their arrays stay shared) and a usable lock (ForkSafe).
class SharedMappings : public std::enable_shared_from_this<SharedMappings> {
 public:
  struct Region {
    char* address;
    std::size_t length;
  };

  // A new shared mapping of at least `bytes` bytes, registered until it is unmapped.
  std::shared_ptr<void> allocate(std::size_t bytes);
  // The live regions of at least `min_length` bytes.
  std::vector<Region> snapshot(std::size_t min_length);
  // Forgets the region at `address` (its array has been unmapped).
  void remove(void* address) noexcept;

 private:
  ForkSafeMutex mutex_;
  std::map<void*, std::size_t> live_;
};

// Maps in worker `worker_id`'s slice of each region (bytes [w/n, (w+1)/n) of it, page aligned), for
// the pages that exist: one system call per run of resident pages instead of a fault per page, and
// pages never touched stay unallocated. Does nothing on kernels without MADV_POPULATE_READ.
void populate_slices(const std::vector<SharedMappings::Region>& regions, int worker_id, int num_workers) noexcept;

}  // namespace pasha

#endif  // PASHA_CONTEXTS_COMMON_SHARED_MEMORY_H_
