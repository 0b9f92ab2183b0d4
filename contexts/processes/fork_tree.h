// How a ProcessContext starts its workers: a binomial tree of forks, so that the caller's critical
// path is about log2(workers) forks instead of one fork per worker. Internal to contexts/.
//
// Ranks: the caller is rank 0 and worker w is rank w + 1. Rank r starts ranks r + 2^k for every k with
// 2^k > r (and r + 2^k <= the number of workers), in increasing k: the caller starts ranks 1, 2, 4, 8,
// ...; rank 1 starts 3, 5, 9, ...; rank 2 starts 6, 10, ...; so every round doubles the started
// ranks. The caller forks its ranks with fork(); workers start theirs with clone3(CLONE_PARENT), which
// makes every worker a child of the caller (one supervisor, one pidfd each, PR_SET_PDEATHSIG following
// the caller's thread), and which is safe there because a freshly forked worker has a single thread.
#ifndef PASHA_CONTEXTS_PROCESSES_FORK_TREE_H_
#define PASHA_CONTEXTS_PROCESSES_FORK_TREE_H_

#include <sys/types.h>

#include <vector>

namespace pasha {

class ForkTree {
 public:
  // A tree over `num_workers` workers; `branching`: false makes the caller start every worker itself
  // (what a hand-written fork loop does).
  ForkTree(int num_workers, bool branching) : num_workers_(num_workers), branching_(branching) {}

  int num_workers() const noexcept { return num_workers_; }
  // The ranks `rank` starts, in the order it starts them.
  std::vector<int> children(int rank) const;
  // `rank` and every rank below it.
  std::vector<int> subtree(int rank) const;
  // The rank that starts `rank` (0 for the caller).
  int starter(int rank) const noexcept;

 private:
  int num_workers_;
  bool branching_;
};

// Whether workers can start other workers here: clone3 is available (not refused by a seccomp filter,
// say) and glibc's thread descriptor can be kept right in the clone (see clone_sibling). Checked once
// per process.
bool fork_tree_available() noexcept;

// From a single-threaded process: a new process that is a sibling of this one (a child of this
// process's parent), in all else like fork() (a copy of this process, returning 0 in it). glibc's
// cached thread id is set for the new process as fork() would. Returns the new pid, or -1 with errno
// set. Only when fork_tree_available().
pid_t clone_sibling() noexcept;

// fork() for a worker the caller starts itself. Like clone_sibling, the child asks for SIGKILL when its
// parent thread ends (PR_SET_PDEATHSIG) first thing, before any fork handler runs in it.
pid_t fork_worker() noexcept;

}  // namespace pasha

#endif  // PASHA_CONTEXTS_PROCESSES_FORK_TREE_H_
