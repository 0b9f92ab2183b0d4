#include "contexts/mpi/gather.h"

#include <climits>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace pasha::mpi {
namespace {

// The MPI type of one item of `g`, committed; `derived` says whether to free it.
MPI_Datatype item_type(Gather& g, bool& derived) {
  derived = true;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  if (g.strided_row_elements > 0) {
    MPI_Datatype element = MPI_DATATYPE_NULL, row = MPI_DATATYPE_NULL;
    check_mpi(MPI_Type_contiguous(static_cast<int>(g.element_size), MPI_BYTE, &element), "MPI_Type_contiguous");
    check_mpi(MPI_Type_create_hvector(static_cast<int>(g.strided_row_elements), 1,
                                      static_cast<MPI_Aint>(g.element_stride), element, &row),
              "MPI_Type_create_hvector");
    check_mpi(MPI_Type_create_resized(row, 0, static_cast<MPI_Aint>(g.element_size), &type), "MPI_Type_create_resized");
    MPI_Type_free(&row);
    MPI_Type_free(&element);
  } else {
    const auto fits = [&](std::size_t scale) {
      for (std::size_t n = 0; n < g.counts.size(); ++n) {
        const std::size_t end =
            (static_cast<std::size_t>(g.displacements[n]) + static_cast<std::size_t>(g.counts[n])) * scale;
        if (end > static_cast<std::size_t>(INT_MAX)) return false;
      }
      return true;
    };
    if (g.item_bytes % 8 == 0 && fits(g.item_bytes / 8)) {
      const auto scale = static_cast<int>(g.item_bytes / 8);
      for (std::size_t n = 0; n < g.counts.size(); ++n) {
        g.counts[n] *= scale;
        g.displacements[n] *= scale;
      }
      derived = false;
      return MPI_UINT64_T;  // opaque 8-byte items: no conversion between ranks of one machine type
    }
    check_mpi(MPI_Type_contiguous(static_cast<int>(g.item_bytes), MPI_BYTE, &type), "MPI_Type_contiguous");
  }
  MPI_Type_commit(&type);
  return type;
}

// MPI_Allgatherv of `g`, in place, among the node leaders.
void gather_among_leaders(Gather g, MPI_Comm leaders) {
  bool derived = false;
  MPI_Datatype type = item_type(g, derived);
  const int code = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, g.data, g.counts.data(), g.displacements.data(),
                                  type, leaders);
  if (derived) MPI_Type_free(&type);
  check_mpi(code, "MPI_Allgatherv");
}

// The bytes of one row (index-aligned arrays) or one worker slot (per-worker arrays) of `layout`.
std::size_t unit_bytes(const backend::ArrayLayout& layout, std::size_t axis) {
  return static_cast<std::size_t>(layout.strides[axis]) * layout.element_size;
}

}  // namespace

WrittenWindows written_windows(const State& state, const backend::Job& job) {
  if (!job.writes().said()) return {0, "every array (not said)"};
  std::uint64_t hash = 14695981039346656037ull;  // FNV-1a over the allocation numbers named
  std::string named;
  for (const auto& [id, window] : state.windows) {
    if (!job.writes().includes(window.data, window.data + window.layout.bytes)) continue;
    for (int byte = 0; byte < 8; ++byte) {
      hash ^= (id >> (8 * byte)) & 0xff;
      hash *= 1099511628211ull;
    }
    named += (named.empty() ? "" : ", ") + std::string("array #") + std::to_string(id);
  }
  return {static_cast<std::int64_t>(hash | 1), named.empty() ? "none of its arrays" : named};
}

std::vector<Gather> plan_gathers(const State& state, const backend::Job& job) {
  std::vector<Gather> plan;
  if (state.num_nodes == 1) return plan;  // every rank shares every array
  const int active = job.num_active_workers();
  const bool indexed = job.num_elements() != backend::Job::kUnknownSize;
  for (const auto& [id, window] : state.windows) {
    const backend::ArrayLayout& layout = window.layout;
    if (job.writes().said() && !job.writes().includes(window.data, window.data + layout.bytes)) continue;
    const std::size_t ndim = layout.shape.ndim();
    Gather g;
    g.data = window.data;
    g.counts.resize(static_cast<std::size_t>(state.num_nodes));
    g.displacements.resize(g.counts.size());
    if (layout.per_worker) {
      g.item_bytes = unit_bytes(layout, layout.order == Order::C ? 0 : ndim - 1);
      for (std::size_t n = 0; n < g.counts.size(); ++n) {
        g.displacements[n] = state.first_worker_of_node[n];
        g.counts[n] = state.workers_of_node[n];
      }
    } else if (indexed && ndim >= 1 && job.num_elements() > 0 && layout.shape[0] == job.num_elements()) {
      if (ndim == 1) {
        g.item_bytes = layout.element_size;
      } else if (layout.order == Order::C) {
        g.item_bytes = unit_bytes(layout, 0);
      } else {  // F order: row i is every shape[0]-th element from element i
        const std::size_t row_elements = layout.shape.num_elements() / layout.shape[0];
        if (row_elements > static_cast<std::size_t>(INT_MAX)) {
          throw std::logic_error("pasha::MpiContext: the F-order array of shape " + layout.shape.to_string() +
                                 " has rows too long to gather (more than INT_MAX elements): allocate it in C order");
        }
        g.strided_row_elements = row_elements;
        g.element_size = layout.element_size;
        g.element_stride = unit_bytes(layout, 1);
      }
      for (std::size_t n = 0; n < g.counts.size(); ++n) {
        const Part node = part_of_map(state.first_worker_of_node[n], state.workers_of_node[n], active);
        const std::optional<IndexRange> rows = job.indices_of_part(node.first, node.count);
        if (!rows) {
          throw std::logic_error("pasha::MpiContext: the array of shape " + layout.shape.to_string() +
                                 " is index-aligned, but the functor's shares on node " + std::to_string(n) +
                                 " are not one contiguous range of indices, so it cannot be made whole");
        }
        if (rows->end > static_cast<std::size_t>(INT_MAX)) {
          throw std::logic_error("pasha::MpiContext: the array of shape " + layout.shape.to_string() +
                                 " has too many rows to gather (more than INT_MAX)");
        }
        g.displacements[n] = static_cast<int>(rows->begin);
        g.counts[n] = static_cast<int>(rows->size());
      }
    } else {
      continue;  // left as each node wrote it
    }
    if (g.item_bytes > 0 || g.strided_row_elements > 0) plan.push_back(std::move(g));
  }
  return plan;
}

void run_gathers(const State& state, const std::vector<Gather>& plan) {
  if (plan.empty()) return;
  // Every rank of this node has finished writing before its leader sends the node's part.
  check_mpi(MPI_Barrier(state.node), "MPI_Barrier");
  if (state.leaders != MPI_COMM_NULL) {
    for (const Gather& g : plan) gather_among_leaders(g, state.leaders);
  }
  // The node's other ranks see what their leader received.
  check_mpi(MPI_Barrier(state.node), "MPI_Barrier");
}

}  // namespace pasha::mpi
