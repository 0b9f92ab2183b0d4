// The state of one MpiContext: its communicators (a duplicate of the user's, the node's, the node
// leaders'), where every rank's workers are in the global numbering, the arrays it allocated, and
// the check that every rank is in the same pasha collective. Internal to contexts/mpi.
#ifndef PASHA_CONTEXTS_MPI_NODE_STATE_H_
#define PASHA_CONTEXTS_MPI_NODE_STATE_H_

#include <mpi.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "contexts/mpi/mpi_context.h"
#include "pasha/core/backend.h"

namespace pasha::mpi {

// The pasha collectives, each checked against the others' on every rank.
enum class Collective : std::int64_t { map = 1, alloc = 2 };

// "map", "alloc", or "an unknown call".
const char* collective_name(std::int64_t code);

// Throws std::runtime_error naming `call` and MPI's message unless `code` is MPI_SUCCESS.
void check_mpi(int code, const char* call);

bool mpi_finalized() noexcept;

// The memory of one array, and what the gather after a map needs to know of it. On a node of several
// ranks it is an MPI shared window; on a node of one rank, the local context's own memory (Open MPI
// gives a one-rank window private memory, which forked local workers would not share).
struct Window {
  MPI_Win win = MPI_WIN_NULL;
  std::shared_ptr<void> local_memory;
  char* data = nullptr;
  backend::ArrayLayout layout;
};


// The active workers [first, first + count) of a map of `active` workers that fall among the
// `workers` workers numbered from `first_worker` (one rank's, or one node's).
struct Part {
  int first;
  int count;
};
Part part_of_map(int first_worker, int workers, int active);

}  // namespace pasha::mpi

namespace pasha {

// The communicators of one context and the arrays it allocated; shared with the arrays, which may
// outlive the context.
struct MpiContext::State {
  std::shared_ptr<Context> local;
  MPI_Comm comm = MPI_COMM_NULL;         // a duplicate of the user's communicator
  MPI_Comm node = MPI_COMM_NULL;         // the ranks of this rank's node
  MPI_Comm leaders = MPI_COMM_NULL;      // rank 0 of each node, ordered by node (MPI_COMM_NULL elsewhere)
  int rank = 0;
  int num_ranks = 1;
  int node_rank = 0;
  int node_size = 1;
  int num_nodes = 1;
  int node_index = 0;                    // this rank's node, in node order
  int total_workers = 0;
  std::vector<int> first_worker_of_rank; // by rank of `comm`
  std::vector<int> workers_of_rank;
  std::vector<int> first_worker_of_node; // by node index
  std::vector<int> workers_of_node;
  std::int64_t sequence = 0;             // pasha collectives so far, the same on every rank
  std::map<std::uint64_t, mpi::Window> windows;  // the live arrays, by allocation number (the same everywhere)
  std::uint64_t next_window = 0;
  // Arrays whose last handle went on this rank, by allocation number: their windows are freed at the
  // next collective once every rank of the node has let them go (free_released_windows), so that
  // ranks may drop arrays in any order, at any time, from any thread (a garbage collector's).
  std::mutex released_mutex;
  std::vector<std::uint64_t> released_windows;

  pid_t owner_pid = ::getpid();          // the process whose MPI this is (never a forked child's)
  bool released = false;                 // release() ran: nothing more to free

  ~State() { release(); }

  // Whether this process may call MPI for this state: the rank's own process (a forked child, such
  // as a local worker or a user's fork, must not), before MPI_Finalize, and before release().
  bool may_call_mpi() const noexcept { return !released && ::getpid() == owner_pid && !mpi::mpi_finalized(); }

  // Frees the windows of the live arrays (in allocation order, the same on every rank) and the
  // communicators; collective over the node and the communicator. Nothing in the child of a fork.
  void release() noexcept {
    if (!may_call_mpi()) return;
    released = true;
    for (auto& [id, window] : windows) {
      if (window.win != MPI_WIN_NULL) MPI_Win_free(&window.win);
    }
    for (MPI_Comm* c : {&leaders, &node, &comm}) {
      if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
    }
  }

  int first_worker() const { return first_worker_of_rank[static_cast<std::size_t>(rank)]; }
  int local_workers() const { return workers_of_rank[static_cast<std::size_t>(rank)]; }

  int rank_of_worker(int worker_id) const {
    for (int r = 0; r < num_ranks; ++r) {
      const auto i = static_cast<std::size_t>(r);
      if (worker_id >= first_worker_of_rank[i] && worker_id < first_worker_of_rank[i] + workers_of_rank[i]) return r;
    }
    return 0;
  }

  // Checks that every rank is in the same pasha collective with the same arguments (`fields`);
  // throws std::invalid_argument on every rank otherwise (one MPI_Allreduce), naming the field.
  struct Agreed {
    std::int64_t value;
    const char* name;
    std::string text = {};  // how this rank describes `value`, when the number says little (a hash)
  };
  void agree(mpi::Collective what, std::initializer_list<Agreed> fields);

  // Records that this rank let array `id` go (FreeWindow; any thread, no MPI).
  void release_window(std::uint64_t id);
  // Frees the windows every rank of the node has let go, in allocation order (collective over the
  // node; agree() calls it when some rank has any).
  void free_released_windows();
};


}  // namespace pasha

namespace pasha::mpi {

using State = MpiContext::State;

// Splits the communicator into nodes and numbers every rank's workers (collective). Throws
// std::invalid_argument when MPI is not initialised or `local` is null.
std::shared_ptr<State> make_state(std::shared_ptr<Context> local, MPI_Comm communicator);

// Lets a window go when the last handle to its array goes: freed at a later collective (State).
struct FreeWindow {
  std::shared_ptr<State> state;  // keeps the node's communicator alive
  std::uint64_t id;

  void operator()(void*) const noexcept { state->release_window(id); }
};

}  // namespace pasha::mpi

#endif  // PASHA_CONTEXTS_MPI_NODE_STATE_H_
