#include "contexts/mpi/mpi_context.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pasha {
namespace {

// The pasha collectives, each checked against the others' on every rank.
enum class Collective : std::int64_t { map = 1, alloc = 2 };

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

// Every k consecutive ranks a node (PASHA_MPI_RANKS_PER_NODE=k), or 0 for the OS's nodes.
int simulated_ranks_per_node() {
  const char* value = std::getenv("PASHA_MPI_RANKS_PER_NODE");
  if (value == nullptr || *value == '\0') return 0;
  const int k = std::atoi(value);
  if (k < 1) throw std::invalid_argument(std::string("pasha::MpiContext: PASHA_MPI_RANKS_PER_NODE must be a positive number, got \"") + value + "\"");
  return k;
}

// The memory of one array, and what the gather after a map needs to know of it. On a node of several
// ranks it is an MPI shared window; on a node of one rank, the local context's own memory (Open MPI
// gives a one-rank window private memory, which forked local workers would not share).
struct Window {
  MPI_Win win = MPI_WIN_NULL;
  std::shared_ptr<void> local_memory;
  char* data = nullptr;
  backend::ArrayLayout layout;
};

}  // namespace

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
  std::map<std::uint64_t, Window> windows;  // the live arrays, by allocation number (the same everywhere)
  std::uint64_t next_window = 0;

  ~State() {
    if (mpi_finalized()) return;
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

  // Checks that every rank is in the same pasha collective with the same arguments; throws
  // std::invalid_argument on every rank otherwise (one MPI_Allreduce).
  // `second_text` describes this rank's `second` for the message, when the number itself says little
  // (a fingerprint).
  void agree(Collective what, std::int64_t first, std::int64_t second, const char* first_name,
             const char* second_name, const std::string& second_text = {}) {
    const std::int64_t mine[] = {static_cast<std::int64_t>(what), sequence, first, second};
    std::int64_t both[8];
    for (int k = 0; k < 4; ++k) {
      both[k] = mine[k];
      both[4 + k] = -mine[k];
    }
    std::int64_t reduced[8];
    check_mpi(MPI_Allreduce(both, reduced, 8, MPI_INT64_T, MPI_MAX, comm), "MPI_Allreduce");
    ++sequence;
    const auto lowest = [&](int k) { return -reduced[4 + k]; };
    if (lowest(0) != reduced[0] || lowest(1) != reduced[1]) {
      throw std::invalid_argument(std::string("pasha::MpiContext: the ranks are not in the same call: this rank is in ") +
                                  collective_name(static_cast<std::int64_t>(what)) +
                                  " (pasha collective #" + std::to_string(mine[1]) +
                                  "), another in " + collective_name(reduced[0] == mine[0] ? lowest(0) : reduced[0]) +
                                  " (#" + std::to_string(reduced[1] == mine[1] ? lowest(1) : reduced[1]) +
                                  "): every rank must make the same allocations and maps in the same order");
    }
    for (int k : {2, 3}) {
      if (lowest(k) != reduced[k] && k == 3 && !second_text.empty()) {
        throw std::invalid_argument(std::string("pasha::MpiContext: the ranks disagree on the ") + second_name +
                                    " of this " + collective_name(static_cast<std::int64_t>(what)) +
                                    "; this rank's is " + second_text);
      }
      if (lowest(k) != reduced[k]) {
        throw std::invalid_argument(std::string("pasha::MpiContext: the ranks disagree on the ") +
                                    (k == 2 ? first_name : second_name) + " of this " +
                                    collective_name(static_cast<std::int64_t>(what)) + ": " +
                                    std::to_string(lowest(k)) + " on some ranks, " + std::to_string(reduced[k]) +
                                    " on others");
      }
    }
  }
};

namespace {

using State = MpiContext::State;

// Frees a window when the last handle to its array goes (MPI_Win_free: collective over the node).
struct FreeWindow {
  std::shared_ptr<State> state;  // keeps the node's communicator alive
  std::uint64_t id;

  void operator()(void*) const noexcept {
    const auto it = state->windows.find(id);
    if (it == state->windows.end()) return;
    MPI_Win win = it->second.win;
    state->windows.erase(it);  // releases local memory, if that is what it was
    if (win != MPI_WIN_NULL && !mpi_finalized()) MPI_Win_free(&win);
  }
};

// This rank's part of a map: local worker w runs global worker first + w of the map's job, as a worker
// of the MpiContext (its hooks, its worker id).
class RankJob final : public backend::Job {
 public:
  RankJob(Context& context, backend::Job& job, int first, int count) : context_(context), job_(job), first_(first) {
    num_active_workers_ = count;
    num_elements_ = job.num_elements();
  }

  void run(int local_worker, backend::WorkerControl& control) override {
    backend::run_worker(context_, job_, first_ + local_worker, control);
  }

 private:
  Context& context_;
  backend::Job& job_;
  int first_;
};

// What this rank's part of a map ended with.
struct Outcome {
  int failed_worker = INT_MAX;   // global id; INT_MAX when none failed
  std::exception_ptr local;      // the local context's exception
  backend::ErrorRecord record;   // its cause, as all ranks will see it
};

// Throws the cause nested in `error` when it is a WorkerError, or `error` itself.
[[noreturn]] void rethrow_cause(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const WorkerError& e) {
    std::rethrow_if_nested(e);
    throw;
  }
}

// Records the cause of `error` (rethrow_cause) into `record`.
void record_cause(const std::exception_ptr& error, backend::ErrorRecord& record) {
  try {
    rethrow_cause(error);
  } catch (const RemoteError& cause) {
    record.record(cause.type_name(), cause.what());
  } catch (...) {
    record.record_current_exception();
  }
}

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
  return state;
}

// The active workers [first, first + count) of a map of `active` workers that fall among the
// `workers` workers numbered from `first_worker` (one rank's, or one node's).
struct Part {
  int first;
  int count;
};
Part part_of_map(int first_worker, int workers, int active) {
  return {std::min(first_worker, active), std::clamp(active - first_worker, 0, workers)};
}

}  // namespace

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

namespace {

using Gather = MpiContext::Gather;

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

// A number that differs, almost surely, between two different layouts (FNV-1a of its fields).
std::int64_t fingerprint(const backend::ArrayLayout& layout) {
  std::uint64_t hash = 14695981039346656037ull;
  const auto mix = [&](std::uint64_t value) {
    for (int byte = 0; byte < 8; ++byte) {
      hash ^= (value >> (8 * byte)) & 0xff;
      hash *= 1099511628211ull;
    }
  };
  mix(layout.shape.ndim());
  for (std::size_t extent : layout.shape) mix(extent);
  mix(layout.element_size);
  mix(layout.order == Order::C ? 0 : 1);
  mix(layout.per_worker ? 1 : 0);
  return static_cast<std::int64_t>(hash);
}

std::string describe(const backend::ArrayLayout& layout) {
  return "shape " + layout.shape.to_string() + ", " + (layout.order == Order::C ? "C" : "F") + " order, " +
         std::to_string(layout.element_size) + "-byte elements" + (layout.per_worker ? ", per worker" : "");
}

// Where Open MPI puts the files behind shared windows: its osc_sm_backing_directory setting, read
// through the MPI tool interface (so that mca-params.conf files count too), else /dev/shm.
std::string window_backing_directory() {
  std::string directory = "/dev/shm";
  int provided = 0;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return directory;
  int index = 0;
  MPI_T_cvar_handle handle = MPI_T_CVAR_HANDLE_NULL;
  int count = 0;
  if (MPI_T_cvar_get_index("osc_sm_backing_directory", &index) == MPI_SUCCESS &&
      MPI_T_cvar_handle_alloc(index, nullptr, &handle, &count) == MPI_SUCCESS) {
    std::vector<char> value(static_cast<std::size_t>(std::max(count, 0)) + 4096, '\0');
    if (MPI_T_cvar_read(handle, value.data()) == MPI_SUCCESS && value[0] != '\0') directory = value.data();
    MPI_T_cvar_handle_free(&handle);
  }
  MPI_T_finalize();
  return directory;
}

// Why the node cannot back a shared window of `bytes`, or "" when it can, as far as can be told. Open
// MPI refuses a backing file unless its directory has 5% more than the file free, and the window
// needs some pages of its own; the margin below is wider, so that MPI never fails where pasha let it
// try (its failure would leave the node's other ranks waiting inside MPI_Win_allocate_shared).
std::string room_for_window(std::size_t bytes, const std::string& directory) {
  constexpr std::size_t kBookkeeping = std::size_t{16} << 20;
  if (bytes > static_cast<std::size_t>(PTRDIFF_MAX) / 2) return "more than an MPI_Aint can hold";
  struct statvfs space {};
  if (::statvfs(directory.c_str(), &space) != 0) return "";  // not known: let MPI try
  const auto free_bytes = static_cast<unsigned __int128>(space.f_bavail) * space.f_frsize;
  const auto needed = static_cast<unsigned __int128>(bytes) + bytes / 10 + kBookkeeping;
  if (needed <= free_bytes) return "";
  return directory + " (where Open MPI backs shared windows) has " +
         std::to_string(static_cast<std::uint64_t>(free_bytes)) + " bytes free, and a window of " +
         std::to_string(bytes) + " bytes needs about " + std::to_string(static_cast<std::uint64_t>(needed));
}

// The bytes of one row (index-aligned arrays) or one worker slot (per-worker arrays) of `layout`.
std::size_t unit_bytes(const backend::ArrayLayout& layout, std::size_t axis) {
  return static_cast<std::size_t>(layout.strides[axis]) * layout.element_size;
}

}  // namespace

MpiContext::MpiContext(std::shared_ptr<Context> local, MPI_Comm communicator)
    : MpiContext(make_state(std::move(local), communicator)) {}

MpiContext::MpiContext(std::shared_ptr<State> state) : Context(state->total_workers), state_(std::move(state)) {}

MpiContext::~MpiContext() = default;

int MpiContext::rank() const noexcept { return state_->rank; }
int MpiContext::num_ranks() const noexcept { return state_->num_ranks; }
int MpiContext::num_nodes() const noexcept { return state_->num_nodes; }
int MpiContext::first_worker() const noexcept { return state_->first_worker(); }
Context& MpiContext::local() const noexcept { return *state_->local; }

Context::ProgressScope MpiContext::progress_scope() const {
  const State& s = *state_;
  const int node_workers = s.workers_of_node[static_cast<std::size_t>(s.node_index)];
  return {.share_of_elements = static_cast<double>(node_workers) / static_cast<double>(std::max(s.total_workers, 1)),
          .report_here = s.rank == 0};
}

std::shared_ptr<void> MpiContext::allocate(std::size_t bytes) {
  backend::ArrayLayout layout;
  layout.shape = Shape{bytes};
  layout.strides[0] = 1;
  layout.element_size = 1;
  layout.bytes = bytes;
  return allocate_array(layout);
}

std::shared_ptr<void> MpiContext::allocate_array(const backend::ArrayLayout& layout) {
  // Inside a kernel (perhaps in a forked worker, which must not call MPI): the worker's own memory.
  if (this_worker_id() >= 0) return backend::allocate_heap(layout.bytes, kAlignment);
  State& state = *state_;
  state.agree(Collective::alloc, static_cast<std::int64_t>(layout.bytes), fingerprint(layout), "byte size",
              "layout (shape, order, element size, per_worker)", describe(layout));
  // A shared window Open MPI cannot back fails on the node's leader only, and leaves the node's other
  // ranks waiting inside MPI_Win_allocate_shared for ever: ask the leaders first, and fail together.
  std::string no_room;
  if (state.node_size > 1) {  // every rank of the node, for its message
    // Asked once per process: MPI_T_init and MPI_T_finalize take a while.
    static const std::string backing_directory = window_backing_directory();
    no_room = room_for_window(layout.bytes + kAlignment, backing_directory);
  }
  int room = no_room.empty() ? 1 : 0, room_everywhere = 0;
  check_mpi(MPI_Allreduce(&room, &room_everywhere, 1, MPI_INT, MPI_MIN, state.comm), "MPI_Allreduce");
  if (room_everywhere == 0) {
    throw AllocationError("pasha::MpiContext: cannot allocate " + std::to_string(layout.bytes) +
                          " bytes on every node" + (no_room.empty() ? std::string() : ": " + no_room));
  }
  const std::uint64_t id = state.next_window++;
  // On a node of one rank, the local context's memory; otherwise node rank 0 holds the whole array and
  // the others map it. One spare alignment unit lets the array start on a kAlignment boundary
  // whatever MPI's.
  std::shared_ptr<void> local_memory;
  std::string local_failure;
  MPI_Win win = MPI_WIN_NULL;
  int code = MPI_SUCCESS;
  if (state.node_size == 1) {
    try {
      local_memory = backend::allocate(*state.local, layout);
    } catch (const std::exception& e) {
      local_failure = e.what();
    }
  } else {
    const auto size = static_cast<MPI_Aint>(state.node_rank == 0 ? layout.bytes + kAlignment : 0);
    MPI_Info info = MPI_INFO_NULL;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "false");
    void* ignored = nullptr;
    code = MPI_Win_allocate_shared(size, 1, info, state.node, &ignored, &win);
    MPI_Info_free(&info);
  }
  // Every rank learns whether the allocation worked everywhere, so that all throw or none.
  int ok = code == MPI_SUCCESS && local_failure.empty() ? 1 : 0, all_ok = 0;
  check_mpi(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, state.comm), "MPI_Allreduce");
  if (all_ok == 0) {
    if (win != MPI_WIN_NULL) MPI_Win_free(&win);
    throw AllocationError("pasha::MpiContext: cannot allocate " + std::to_string(layout.bytes) + " bytes on every rank" +
                          (local_failure.empty() ? std::string() : ": " + local_failure));
  }
  if (local_memory) {
    char* data = static_cast<char*>(local_memory.get());
    state.windows.emplace(id, Window{MPI_WIN_NULL, std::move(local_memory), data, layout});
    return std::shared_ptr<void>(data, FreeWindow{state_, id});
  }
  MPI_Aint queried_size = 0;
  int unit = 0;
  void* base = nullptr;
  check_mpi(MPI_Win_shared_query(win, 0, &queried_size, &unit, &base), "MPI_Win_shared_query");
  const auto address = reinterpret_cast<std::uintptr_t>(base);
  char* data = reinterpret_cast<char*>((address + kAlignment - 1) / kAlignment * kAlignment);
  state.windows.emplace(id, Window{win, nullptr, data, layout});
  return std::shared_ptr<void>(data, FreeWindow{state_, id});
}

void MpiContext::launch(backend::Job& job) {
  State& state = *state_;
  const bool indexed = job.num_elements() != backend::Job::kUnknownSize;
  state.agree(Collective::map, indexed ? static_cast<std::int64_t>(job.num_elements()) : -1, job.num_active_workers(),
              "collection size", "number of active workers");
  const int active = job.num_active_workers();
  const auto [first, count] = part_of_map(state.first_worker(), state.local_workers(), active);
  // Arrays that cannot be made whole are found before any kernel runs (the same on every rank).
  const std::vector<Gather> gathers = plan_gathers(job);
  job.restrict_to_part(first, count);

  Outcome outcome;
  if (count > 0) {
    RankJob part(*this, job, first, count);
    try {
      backend::launch(*state.local, part);
    } catch (const WorkerError& error) {
      outcome.failed_worker = first + error.worker_id();
      outcome.local = std::current_exception();
      record_cause(outcome.local, outcome.record);
    } catch (...) {
      // The local context itself failed (it could not start its workers, say): reported for this
      // rank's first worker, so that every rank hears of it.
      outcome.failed_worker = first;
      outcome.local = std::current_exception();
      record_cause(outcome.local, outcome.record);
    }
  }

  int lowest = INT_MAX;
  check_mpi(MPI_Allreduce(&outcome.failed_worker, &lowest, 1, MPI_INT, MPI_MIN, state.comm), "MPI_Allreduce");
  if (lowest != INT_MAX) {
    const int owner = state.rank_of_worker(lowest);
    check_mpi(MPI_Bcast(&outcome.record, sizeof(outcome.record), MPI_BYTE, owner, state.comm), "MPI_Bcast");
    if (state.rank == owner) {
      const std::string message =
          "pasha: worker " + std::to_string(lowest) + " failed: " + std::string(outcome.record.message_text());
      try {
        rethrow_cause(outcome.local);
      } catch (...) {
        throw WorkerError(lowest, message);  // nests the original cause
      }
    }
    outcome.record.throw_worker_error(lowest);
  }
  run_gathers(gathers);
}

std::vector<MpiContext::Gather> MpiContext::plan_gathers(const backend::Job& job) const {
  const State& state = *state_;
  std::vector<Gather> plan;
  if (state.num_nodes == 1) return plan;  // every rank shares every array
  const int active = job.num_active_workers();
  const bool indexed = job.num_elements() != backend::Job::kUnknownSize;
  for (const auto& [id, window] : state.windows) {
    const backend::ArrayLayout& layout = window.layout;
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

void MpiContext::run_gathers(const std::vector<Gather>& plan) {
  const State& state = *state_;
  if (plan.empty()) return;
  // Every rank of this node has finished writing before its leader sends the node's part.
  check_mpi(MPI_Barrier(state.node), "MPI_Barrier");
  if (state.leaders != MPI_COMM_NULL) {
    for (const Gather& g : plan) gather_among_leaders(g, state.leaders);
  }
  // The node's other ranks see what their leader received.
  check_mpi(MPI_Barrier(state.node), "MPI_Barrier");
}

}  // namespace pasha
