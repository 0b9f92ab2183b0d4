// Facts about this machine that contexts need, read in one place.
#ifndef PASHA_CONTEXTS_COMMON_MACHINE_H_
#define PASHA_CONTEXTS_COMMON_MACHINE_H_

#include <cstddef>

namespace pasha {

// The size of a memory page, in bytes (sysconf(_SC_PAGESIZE)).
std::size_t page_size() noexcept;

// How many CPUs (hardware threads) the calling thread may run on, at least 1.
int allowed_cpu_count() noexcept;

}  // namespace pasha

#endif  // PASHA_CONTEXTS_COMMON_MACHINE_H_
