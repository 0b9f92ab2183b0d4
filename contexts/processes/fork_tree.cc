#include "contexts/processes/fork_tree.h"

#include <dlfcn.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pasha {

std::vector<int> ForkTree::children(int rank) const {
  std::vector<int> ranks;
  if (!branching_) {
    if (rank == 0) {
      for (int r = 1; r <= num_workers_; ++r) ranks.push_back(r);
    }
    return ranks;
  }
  for (long step = 1; rank + step <= num_workers_; step *= 2) {
    if (step > rank) ranks.push_back(static_cast<int>(rank + step));
  }
  return ranks;
}

std::vector<int> ForkTree::subtree(int rank) const {
  std::vector<int> ranks{rank};
  for (std::size_t next = 0; next < ranks.size(); ++next) {
    for (int child : children(ranks[next])) ranks.push_back(child);
  }
  return ranks;
}

int ForkTree::starter(int rank) const noexcept {
  if (!branching_ || rank <= 0) return 0;
  // The highest power of two at most rank is the step that started it.
  int step = 1;
  while (step * 2 <= rank) step *= 2;
  return rank - step;
}

namespace {

// Where glibc keeps a thread's own thread id inside its thread descriptor (pthread_self()): fork()
// updates it in the child, a raw clone does not, and pthread_setaffinity_np(pthread_self()) and its
// like would then act on the cloning process. glibc publishes the offset for debuggers
// (libthread_db's _thread_db_pthread_tid: bits, count, offset). -1 when it is not there or does not
// hold the calling thread's id.
std::ptrdiff_t cached_tid_offset() noexcept {
  static const std::ptrdiff_t offset = [] {
    const auto* descriptor = static_cast<const std::uint32_t*>(dlsym(RTLD_DEFAULT, "_thread_db_pthread_tid"));
    if (descriptor == nullptr || descriptor[0] != 8 * sizeof(pid_t) || descriptor[1] != 1) return std::ptrdiff_t{-1};
    const auto candidate = static_cast<std::ptrdiff_t>(descriptor[2]);
    pid_t cached = 0;
    std::memcpy(&cached, reinterpret_cast<const char*>(pthread_self()) + candidate, sizeof(cached));
    return cached == static_cast<pid_t>(syscall(SYS_gettid)) ? candidate : std::ptrdiff_t{-1};
  }();
  return offset;
}

long raw_clone3(clone_args* args) noexcept { return syscall(SYS_clone3, args, sizeof(*args)); }

}  // namespace

bool fork_tree_available() noexcept {
  static const bool available = [] {
    if (cached_tid_offset() < 0) return false;
    // An empty clone3 request is refused with EINVAL where clone3 exists, ENOSYS (or EPERM) where it
    // does not or a filter forbids it.
    clone_args none{};
    return syscall(SYS_clone3, &none, std::size_t{0}) < 0 && errno == EINVAL;
  }();
  return available;
}

pid_t clone_sibling() noexcept {
  if (!fork_tree_available()) {
    errno = ENOSYS;
    return -1;
  }
  clone_args args{};
  // CLONE_PARENT: a child of our parent. The exit signal is then our own (SIGCHLD), and clone3 wants
  // it left 0. CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID on glibc's cached tid: as glibc's fork().
  args.flags = CLONE_PARENT | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
  args.child_tid = reinterpret_cast<std::uint64_t>(reinterpret_cast<char*>(pthread_self()) + cached_tid_offset());
  const auto pid = static_cast<pid_t>(raw_clone3(&args));
  if (pid == 0) prctl(PR_SET_PDEATHSIG, SIGKILL);  // before any fork handler runs here (see fork_worker)
  return pid;
}

pid_t fork_worker() noexcept {
  const pid_t pid = fork();
  // First thing in the child, before the fork handlers: an embedding's (Python's PyOS_AfterFork_Child)
  // may block for good when the caller's interpreter is exiting, and the worker must die with the
  // caller's thread all the same.
  if (pid == 0) prctl(PR_SET_PDEATHSIG, SIGKILL);
  return pid;
}

}  // namespace pasha
