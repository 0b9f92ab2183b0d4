#include "contexts/mpi/node_state.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <utility>
#include <vector>

namespace pasha::mpi {
namespace {

// Every k consecutive ranks a node (PASHA_MPI_RANKS_PER_NODE=k), or 0 for the OS's nodes.
int simulated_ranks_per_node() {
  const char* value = std::getenv("PASHA_MPI_RANKS_PER_NODE");
  if (value == nullptr || *value == '\0') return 0;
  const int k = std::atoi(value);
  if (k < 1) throw std::invalid_argument(std::string("pasha::MpiContext: PASHA_MPI_RANKS_PER_NODE must be a positive number, got \"") + value + "\"");
  return k;
}

}  // namespace

const char* collective_name(std::int64_t code) {
  switch (static_cast<Collective>(code)) {
    case Collective::map:
      return "map";
    case Collective::alloc:
      return "alloc";
  }
  return "an unknown call";
}

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("pasha::MpiContext: ") + call + " failed: " + std::string(text, length));
}

bool mpi_finalized() noexcept {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}


namespace {

// Every State made in this process, in order, for MpiContext::release_all.
struct Registry {
  std::mutex mutex;
  std::vector<std::weak_ptr<State>> states;
};
Registry& registry() {
  static Registry* const instance = new Registry;  // never destroyed: states may outlive statics
  return *instance;
}

}  // namespace

std::shared_ptr<State> make_state(std::shared_ptr<Context> local, MPI_Comm communicator) {
  if (!local) throw std::invalid_argument("pasha::MpiContext: the local context is null");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized || mpi_finalized()) {
    throw std::invalid_argument("pasha::MpiContext: MPI is not initialised: call MPI_Init (or MPI_Init_thread) first");
  }
  auto state = std::make_shared<State>();
  state->local = std::move(local);
  check_mpi(MPI_Comm_dup(communicator, &state->comm), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(state->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(state->comm, &state->rank);
  MPI_Comm_size(state->comm, &state->num_ranks);

  const int per_node = simulated_ranks_per_node();
  if (per_node > 0) {
    check_mpi(MPI_Comm_split(state->comm, state->rank / per_node, state->rank, &state->node), "MPI_Comm_split");
  } else {
    check_mpi(MPI_Comm_split_type(state->comm, MPI_COMM_TYPE_SHARED, state->rank, MPI_INFO_NULL, &state->node),
              "MPI_Comm_split_type");
  }
  MPI_Comm_set_errhandler(state->node, MPI_ERRORS_RETURN);
  MPI_Comm_rank(state->node, &state->node_rank);
  MPI_Comm_size(state->node, &state->node_size);
  // A node is known by its lowest rank; nodes are ordered by it.
  int node_key = 0;
  check_mpi(MPI_Allreduce(&state->rank, &node_key, 1, MPI_INT, MPI_MIN, state->node), "MPI_Allreduce");
  check_mpi(MPI_Comm_split(state->comm, state->node_rank == 0 ? 0 : MPI_UNDEFINED, node_key, &state->leaders),
            "MPI_Comm_split");
  if (state->leaders != MPI_COMM_NULL) MPI_Comm_set_errhandler(state->leaders, MPI_ERRORS_RETURN);

  // Every rank's (node, rank in node, local workers): worker ids go node by node, rank by rank.
  const int mine[3] = {node_key, state->node_rank, state->local->num_workers()};
  std::vector<int> all(static_cast<std::size_t>(3 * state->num_ranks));
  check_mpi(MPI_Allgather(mine, 3, MPI_INT, all.data(), 3, MPI_INT, state->comm), "MPI_Allgather");
  std::vector<int> order(static_cast<std::size_t>(state->num_ranks));
  std::iota(order.begin(), order.end(), 0);
  const auto field = [&](int r, int k) { return all[static_cast<std::size_t>(3 * r + k)]; };
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return std::pair(field(a, 0), field(a, 1)) < std::pair(field(b, 0), field(b, 1));
  });
  state->first_worker_of_rank.assign(static_cast<std::size_t>(state->num_ranks), 0);
  state->workers_of_rank.assign(static_cast<std::size_t>(state->num_ranks), 0);
  long total = 0;
  int previous_key = -1;
  for (int r : order) {
    if (field(r, 0) != previous_key) {
      previous_key = field(r, 0);
      state->first_worker_of_node.push_back(static_cast<int>(std::min<long>(total, INT_MAX)));
      state->workers_of_node.push_back(0);
    }
    if (r == state->rank) state->node_index = static_cast<int>(state->first_worker_of_node.size()) - 1;
    state->first_worker_of_rank[static_cast<std::size_t>(r)] = static_cast<int>(std::min<long>(total, INT_MAX));
    state->workers_of_rank[static_cast<std::size_t>(r)] = field(r, 2);
    state->workers_of_node.back() += field(r, 2);
    total += field(r, 2);
  }
  state->num_nodes = static_cast<int>(state->first_worker_of_node.size());
  state->total_workers = static_cast<int>(std::min<long>(total, static_cast<long>(kMaxWorkers) + 1));
  {
    Registry& all = registry();
    const std::lock_guard lock(all.mutex);
    std::erase_if(all.states, [](const std::weak_ptr<State>& gone) { return gone.expired(); });
    all.states.push_back(state);
  }
  return state;
}

Part part_of_map(int first_worker, int workers, int active) {
  return {std::min(first_worker, active), std::clamp(active - first_worker, 0, workers)};
}


}  // namespace pasha::mpi

namespace pasha {

void MpiContext::State::agree(mpi::Collective what, std::initializer_list<Agreed> fields) {
  std::vector<std::int64_t> mine{static_cast<std::int64_t>(what), sequence};
  for (const Agreed& field : fields) mine.push_back(field.value);
  {
    // Not agreed on: the most arrays any rank has let go (reduced with the rest, for one Allreduce).
    const std::lock_guard lock(released_mutex);
    mine.push_back(static_cast<std::int64_t>(released_windows.size()));
  }
  const std::size_t n = mine.size();
  std::vector<std::int64_t> both(2 * n), reduced(2 * n);
  for (std::size_t k = 0; k < n; ++k) {
    both[k] = mine[k];
    both[n + k] = -mine[k];
  }
  mpi::check_mpi(MPI_Allreduce(both.data(), reduced.data(), static_cast<int>(2 * n), MPI_INT64_T, MPI_MAX, comm),
                 "MPI_Allreduce");
  ++sequence;
  const auto lowest = [&](std::size_t k) { return -reduced[n + k]; };
  const std::string call = mpi::collective_name(static_cast<std::int64_t>(what));
  if (lowest(0) != reduced[0] || lowest(1) != reduced[1]) {
    throw std::invalid_argument("pasha::MpiContext: the ranks are not in the same call: this rank is in " + call +
                                " (pasha collective #" + std::to_string(mine[1]) + "), another in " +
                                mpi::collective_name(reduced[0] == mine[0] ? lowest(0) : reduced[0]) + " (#" +
                                std::to_string(reduced[1] == mine[1] ? lowest(1) : reduced[1]) +
                                "): every rank must make the same allocations and maps in the same order");
  }
  std::size_t k = 2;
  for (const Agreed& field : fields) {
    if (lowest(k) != reduced[k]) {
      throw std::invalid_argument("pasha::MpiContext: the ranks disagree on the " + std::string(field.name) +
                                  " of this " + call + ": " +
                                  (field.text.empty() ? std::to_string(lowest(k)) + " on some ranks, " +
                                                            std::to_string(reduced[k]) + " on others"
                                                      : "this rank's is " + field.text));
    }
    ++k;
  }
  if (reduced[n - 1] > 0) free_released_windows();
}

void MpiContext::State::release_window(std::uint64_t id) {
  const std::lock_guard lock(released_mutex);
  released_windows.push_back(id);
}

void MpiContext::State::free_released_windows() {
  std::vector<std::uint64_t> mine;
  {
    const std::lock_guard lock(released_mutex);
    mine.swap(released_windows);
  }
  std::sort(mine.begin(), mine.end());
  // Arrays in the local context's memory (a node of one rank) go now; windows once the node agrees.
  std::vector<std::uint64_t> shared;
  for (const std::uint64_t id : mine) {
    const auto it = windows.find(id);
    if (it == windows.end()) continue;
    if (it->second.win == MPI_WIN_NULL) {
      windows.erase(it);
    } else {
      shared.push_back(id);
    }
  }
  const int count = static_cast<int>(shared.size());
  std::vector<int> counts(static_cast<std::size_t>(node_size)), offsets(static_cast<std::size_t>(node_size));
  mpi::check_mpi(MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, node), "MPI_Allgather");
  std::exclusive_scan(counts.begin(), counts.end(), offsets.begin(), 0);
  std::vector<std::uint64_t> everyones(static_cast<std::size_t>(offsets.back() + counts.back()));
  mpi::check_mpi(MPI_Allgatherv(shared.data(), count, MPI_UINT64_T, everyones.data(), counts.data(), offsets.data(),
                                MPI_UINT64_T, node),
                 "MPI_Allgatherv");
  std::map<std::uint64_t, int> ranks_done;
  for (const std::uint64_t id : everyones) ++ranks_done[id];
  std::vector<std::uint64_t> kept;
  for (const std::uint64_t id : shared) {  // ascending: the same order on every rank of the node
    if (ranks_done[id] == node_size) {
      auto it = windows.find(id);
      MPI_Win_free(&it->second.win);
      windows.erase(it);
    } else {
      kept.push_back(id);  // another rank of the node still has it
    }
  }
  const std::lock_guard lock(released_mutex);
  released_windows.insert(released_windows.end(), kept.begin(), kept.end());
}

void MpiContext::release_all() noexcept {
  std::vector<std::shared_ptr<State>> live;
  {
    mpi::Registry& all = mpi::registry();
    const std::lock_guard lock(all.mutex);
    for (const std::weak_ptr<State>& state : all.states) {
      if (std::shared_ptr<State> alive = state.lock()) live.push_back(std::move(alive));
    }
  }
  for (const std::shared_ptr<State>& state : live) state->release();
}

}  // namespace pasha
