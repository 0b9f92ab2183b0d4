// The memory of an MpiContext's arrays: a shared window per array on each node (MPI_Win_allocate_shared
// over the node's ranks), or the local context's memory on a node of one rank; allocated collectively,
// after every rank has agreed on the layout and every node has room. Internal to contexts/mpi.
#ifndef PASHA_CONTEXTS_MPI_WINDOWS_H_
#define PASHA_CONTEXTS_MPI_WINDOWS_H_

#include <cstddef>
#include <memory>

#include "contexts/mpi/node_state.h"

namespace pasha::mpi {

// A new array of `layout` on every rank (collective), starting on an `alignment` boundary, released
// collectively with its last handle. Throws std::invalid_argument when the ranks' layouts differ,
// pasha::AllocationError on every rank when some node cannot back it.
std::shared_ptr<void> allocate_window(const std::shared_ptr<State>& state_ptr, const backend::ArrayLayout& layout,
                                      std::size_t alignment);

}  // namespace pasha::mpi

#endif  // PASHA_CONTEXTS_MPI_WINDOWS_H_
