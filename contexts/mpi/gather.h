// Making arrays whole on every rank after a map across nodes: which arrays, and which part of each
// comes from which node (planned before any kernel runs, so that an array that cannot be made whole
// fails the map first), then one MPI_Allgatherv among node leaders per array. Internal to
// contexts/mpi.
#ifndef PASHA_CONTEXTS_MPI_GATHER_H_
#define PASHA_CONTEXTS_MPI_GATHER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "contexts/mpi/node_state.h"

namespace pasha {

// One array's gather after a map: each node's items (rows or worker slots) at item displacements,
// gathered in place among the node leaders.
struct MpiContext::Gather {
  char* data = nullptr;
  std::vector<int> counts;         // by node, in items
  std::vector<int> displacements;  // by node, in items
  // Contiguous items of `item_bytes`; or, for the rows of an F-order array (strided_row_elements > 0),
  // items of that many elements `element_size` bytes each, `element_stride` bytes apart, one item
  // starting `element_size` bytes after the previous one.
  std::size_t item_bytes = 0;
  std::size_t strided_row_elements = 0;
  std::size_t element_size = 0;
  std::size_t element_stride = 0;
};

}  // namespace pasha

namespace pasha::mpi {

using Gather = MpiContext::Gather;

// Which of `state`'s arrays a map says its kernels write (Job::writes; all of them when it does not
// say), as a number every rank must agree on and as words for the message when they do not.
struct WrittenWindows {
  std::int64_t fingerprint = 0;
  std::string description;
};
WrittenWindows written_windows(const State& state, const backend::Job& job);

// What making the arrays of `state` whole after `job` takes: per-worker arrays, and index-aligned
// arrays of the ones the job writes (Job::writes). Throws std::logic_error, before the map runs, for an
// array that cannot be made whole.
std::vector<Gather> plan_gathers(const State& state, const backend::Job& job);

// Makes the planned arrays whole on every rank, after a successful map (collective).
void run_gathers(const State& state, const std::vector<Gather>& plan);

}  // namespace pasha::mpi

#endif  // PASHA_CONTEXTS_MPI_GATHER_H_
