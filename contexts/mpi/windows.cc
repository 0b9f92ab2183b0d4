#include "contexts/mpi/windows.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

namespace pasha::mpi {
namespace {

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

}  // namespace

std::shared_ptr<void> allocate_window(const std::shared_ptr<State>& state_ptr, const backend::ArrayLayout& layout,
                                      std::size_t alignment) {
  State& state = *state_ptr;
  state.agree(Collective::alloc, {{static_cast<std::int64_t>(layout.bytes), "byte size"},
                                  {fingerprint(layout), "layout (shape, order, element size, per_worker)",
                                   describe(layout)}});
  // A shared window Open MPI cannot back fails on the node's leader only, and leaves the node's other
  // ranks waiting inside MPI_Win_allocate_shared for ever: ask the leaders first, and fail together.
  std::string no_room;
  if (state.node_size > 1) {  // every rank of the node, for its message
    // Asked once per process: MPI_T_init and MPI_T_finalize take a while.
    static const std::string backing_directory = window_backing_directory();
    no_room = room_for_window(layout.bytes + alignment, backing_directory);
  }
  int room = no_room.empty() ? 1 : 0, room_everywhere = 0;
  check_mpi(MPI_Allreduce(&room, &room_everywhere, 1, MPI_INT, MPI_MIN, state.comm), "MPI_Allreduce");
  if (room_everywhere == 0) {
    throw AllocationError("pasha::MpiContext: cannot allocate " + std::to_string(layout.bytes) +
                          " bytes on every node" + (no_room.empty() ? std::string() : ": " + no_room));
  }
  const std::uint64_t id = state.next_window++;
  // On a node of one rank, the local context's memory; otherwise node rank 0 holds the whole array and
  // the others map it. One spare alignment unit lets the array start on a alignment boundary
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
    const auto size = static_cast<MPI_Aint>(state.node_rank == 0 ? layout.bytes + alignment : 0);
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
    return std::shared_ptr<void>(data, FreeWindow{state_ptr, id});
  }
  MPI_Aint queried_size = 0;
  int unit = 0;
  void* base = nullptr;
  check_mpi(MPI_Win_shared_query(win, 0, &queried_size, &unit, &base), "MPI_Win_shared_query");
  const auto address = reinterpret_cast<std::uintptr_t>(base);
  char* data = reinterpret_cast<char*>((address + alignment - 1) / alignment * alignment);
  state.windows.emplace(id, Window{win, nullptr, data, layout});
  return std::shared_ptr<void>(data, FreeWindow{state_ptr, id});
}

}  // namespace pasha::mpi
