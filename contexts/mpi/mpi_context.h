// pasha::MpiContext: one map across the ranks of an MPI job (many nodes), each rank running its part
// on a local context of its own (serial, threads or processes). Built on the backend contract
// (pasha/core/backend.h) alone, as a third party would build it.
//
//   MPI_Init(&argc, &argv);
//   {
//     pasha::MpiContext ctx(std::make_shared<pasha::ThreadContext>());   // on every rank
//     auto out = ctx.alloc<double>(n);
//     ctx.map([&](int worker, std::size_t i, double v) { out[i] = 3 * v; }, input);   // every rank
//     // out is whole on every rank here
//   }
//   MPI_Finalize();
//
// SPMD: every rank constructs its MpiContext, allocates its arrays and calls map in the same order,
// with the same collection: these are collective operations over the communicator. The collection
// is split across ranks first, then each rank's part across its local workers. Indices are global;
// worker ids are global too (rank r's local worker w has id first_worker() + w, ranks numbered node by
// node), and num_workers() is the total over all ranks.
//
// Schedules: static shares go to the global workers as in any context. A dynamic schedule (and a
// functor returning more shares than there are workers) hands out chunks within each rank, from a
// block of the collection in proportion to the rank's workers: static across ranks, dynamic within a
// rank. Local workers may be forked processes, which must not call MPI, and a shared counter across
// nodes would cost a network round trip per chunk; ranks whose blocks take longer are not helped.
//
// Memory: alloc gives an array that the ranks of one node share (MPI_Win_allocate_shared on the node's
// communicator; on a node of one rank, the local context's memory), so a node's ranks and their local
// workers write into one copy, without copies. When
// map returns on a rank, these arrays are whole on it:
//   - per-worker arrays (.per_worker = true): the worker axis spans every rank's workers; each node's
//     slots are gathered from the node that owns them;
//   - index-aligned arrays: arrays whose first axis has the map's length, after a map over an indexed
//     functor: row i comes from the node whose worker visited index i (in C order a row is contiguous;
//     in F order it is gathered as a strided MPI type, which is slower).
// Every other array is left as its node wrote it. A map that says which arrays its kernels write
// (`ctx.map(kernel, input, {.writes = pasha::writes(out, partial)})`) makes only those whole, and
// `pasha::writes()` none: an input array the context allocated is then not sent again after every map.
// Gathering costs one MPI_Allgatherv among node leaders per array and map, never per element, and
// nothing when every rank is on one node. When the
// functor's shares of one node are not one contiguous range of indices, a live array with the map's
// length along its first axis cannot be made whole: the map throws std::logic_error on every rank
// before any kernel runs (as it does for rows too long for MPI's int counts). Arrays may be dropped
// in any order, at any time, from any thread (a garbage collector's): an array's memory is freed at a
// later alloc or map of its context, once every rank of its node has dropped it (MPI_Win_free is
// collective over the node), or when the context goes. An array allocated inside a kernel is
// private heap memory of that worker.
//
// Errors: a kernel that throws on any rank makes map throw pasha::WorkerError on every rank, for the
// lowest failed global worker id, with its message: on the rank that ran it the original exception is
// nested (or the local context's RemoteError), elsewhere a RemoteError. The ranks agree on the failure
// with collectives after each has finished its part: a failure stops that rank's other workers early,
// other ranks finish their parts first. Collections whose sizes differ across ranks, allocations
// whose shapes (or order, element size, per_worker) differ, and a map (or alloc) on some ranks where
// others are in another pasha collective, give std::invalid_argument on every rank. An allocation
// that some node cannot back gives pasha::AllocationError on every rank. A rank that never calls the
// collective cannot be told from a slow one: the others wait.
// A rank that dies ends the job: mpirun (or srun) reports it and kills the other ranks.
//
// Nodes: ranks share a node when MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) says so. The environment
// variable PASHA_MPI_RANKS_PER_NODE=k makes every k consecutive ranks a node instead, to exercise
// gathering across nodes on one machine.
//
// Threads: pasha calls MPI from the thread that constructs the context, allocates and calls map
// (MPI_THREAD_FUNNELED is enough when that is one thread), never from workers. Destroy the context and
// its arrays before MPI_Finalize (or call release_all()). A forked child (a local worker, a user's own
// fork) that drops a context or an array calls no MPI.
//
// Progress (MapOptions::progress): rank 0 reports; while the map runs it counts its node's elements
// and shows them scaled to the whole map (nodes are assumed to progress alike), and its last line,
// once the map has succeeded, counts every node's.
#ifndef PASHA_CONTEXTS_MPI_MPI_CONTEXT_H_
#define PASHA_CONTEXTS_MPI_MPI_CONTEXT_H_

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "pasha/core/backend.h"

namespace pasha {

class MpiContext final : public Context {
 public:
  // Collective over `communicator` (which pasha duplicates for its own use). `local` runs this rank's
  // workers; it should not be used by itself while the MpiContext lives. Throws std::invalid_argument
  // when MPI is not initialised, `local` is null, or the total worker count exceeds kMaxWorkers.
  explicit MpiContext(std::shared_ptr<Context> local, MPI_Comm communicator = MPI_COMM_WORLD);
  ~MpiContext() override;

  std::string name() const override { return "mpi"; }
  int num_callers() const noexcept override { return num_ranks(); }
  // Rank 0 reports, counting the workers of its node.
  ProgressScope progress_scope() const override;

  int rank() const noexcept;
  int num_ranks() const noexcept;
  int num_nodes() const noexcept;
  // The global id of this rank's local worker 0.
  int first_worker() const noexcept;
  Context& local() const noexcept;

  // For programs that cannot destroy every context and array before MPI_Finalize (an interpreter
  // at exit, whose objects go in no order the ranks agree on): frees, collectively and in the order
  // they were made, the communicators of every MpiContext of this process and the windows of their
  // live arrays, which must not be used after. Later destruction then calls no MPI. Call it on every
  // rank, before MPI_Finalize.
  static void release_all() noexcept;

  // Internal (contexts/mpi/node_state.h, contexts/mpi/gather.h).
  struct State;
  struct Gather;

 protected:
  std::shared_ptr<void> allocate(std::size_t bytes) override;
  std::shared_ptr<void> allocate_array(const backend::ArrayLayout& layout) override;
  void launch(backend::Job& job) override;

 private:
  explicit MpiContext(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace pasha

#endif  // PASHA_CONTEXTS_MPI_MPI_CONTEXT_H_
