#include "contexts/mpi/mpi_context.h"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "contexts/mpi/gather.h"
#include "contexts/mpi/node_state.h"
#include "contexts/mpi/windows.h"

namespace pasha {
namespace {

using mpi::check_mpi;
using mpi::Collective;
using mpi::State;

// The tag of the message a rank sends every other rank when its caller's check stopped its part of a
// map (Ctrl-C on that rank): the others stop their parts too, instead of running them to their end.
constexpr int kStopTag = 0x7a5a;

// Thrown by a rank's check when another rank's part was stopped: this rank stops its workers too, and
// the map then fails on every rank with what the other rank recorded. Not a failure of this rank's.
class StoppedByAnotherRank : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// This rank's part of a map: local worker w runs global worker first + w of the map's job, as a worker
// of the MpiContext (its hooks, its worker id). Its caller check is the map's (if it has one), then a
// look for another rank's word that its part stopped; when the map's check throws, every other rank is
// told before the exception goes on.
class RankJob final : public backend::Job {
 public:
  // While it lives, the map's job checks with this part's check too (a serial local context runs the
  // map's job on the caller's thread and checks between its chunks).
  RankJob(Context& context, backend::Job& job, int first, int count, const State& state)
      : context_(context),
        job_(job),
        first_(first),
        state_(state),
        map_check_(job.caller_check_function()),
        check_([this] { check(); }) {
    num_active_workers_ = count;
    num_elements_ = job.num_elements();
    caller_check_ = &check_;
    job_.replace_caller_check(&check_);
  }
  ~RankJob() override { job_.replace_caller_check(map_check_); }
  RankJob(const RankJob&) = delete;
  RankJob& operator=(const RankJob&) = delete;

  void run(int local_worker, backend::WorkerControl& control) override {
    backend::run_worker(context_, job_, first_ + local_worker, control);
  }

  // Whether the map's own check stopped this part (this rank's caller was interrupted).
  bool interrupted() const noexcept { return interrupted_; }
  // Whether this rank told the others that its part stopped.
  bool told_other_ranks() const noexcept { return told_; }

  // Tells every other rank that this rank's part stopped because its caller was interrupted, once:
  // they stop theirs at their next check instead of running them to their end. (A kernel's failure
  // does not stop other ranks early: when every worker fails at once, the lowest id is reported.)
  void tell_other_ranks() {
    if (told_) return;
    told_ = true;
    const int rank = state_.rank;
    for (int other = 0; other < state_.num_ranks; ++other) {
      if (other != rank) check_mpi(MPI_Send(&rank, 1, MPI_INT, other, kStopTag, state_.comm), "MPI_Send");
    }
  }

 private:
  void check() {
    try {
      if (map_check_ != nullptr) (*map_check_)();
    } catch (...) {
      interrupted_ = true;
      tell_other_ranks();
      throw;
    }
    int arrived = 0;
    MPI_Status status;
    check_mpi(MPI_Iprobe(MPI_ANY_SOURCE, kStopTag, state_.comm, &arrived, &status), "MPI_Iprobe");
    if (arrived != 0) {
      throw StoppedByAnotherRank("pasha: the map was stopped on rank " + std::to_string(status.MPI_SOURCE));
    }
  }

  Context& context_;
  backend::Job& job_;
  int first_;
  const State& state_;
  const std::function<void()>* map_check_;
  std::function<void()> check_;
  bool interrupted_ = false;
  bool told_ = false;
};

// Receives the stop messages `expected` other ranks sent this one during a map (they were sent before
// those ranks reached the map's closing collective, so they have all been sent).
void receive_stop_messages(const State& state, int expected) {
  for (int k = 0; k < expected; ++k) {
    int rank = 0;
    check_mpi(MPI_Recv(&rank, 1, MPI_INT, MPI_ANY_SOURCE, kStopTag, state.comm, MPI_STATUS_IGNORE), "MPI_Recv");
  }
}

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

bool is_worker_error(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const WorkerError&) {
    return true;
  } catch (...) {
    return false;
  }
}

// Records the cause of `error` (rethrow_cause) into `record`.
void record_cause(const std::exception_ptr& error, backend::ErrorRecord& record) {
  try {
    rethrow_cause(error);
  } catch (const RemoteError& cause) {
    record.record(cause.type_name(), cause.what(), cause.payload());
  } catch (...) {
    record.record_current_exception();
  }
}

}  // namespace

MpiContext::MpiContext(std::shared_ptr<Context> local, MPI_Comm communicator)
    : MpiContext(mpi::make_state(std::move(local), communicator)) {}

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
  return mpi::allocate_window(state_, layout, kAlignment);
}

void MpiContext::launch(backend::Job& job) {
  State& state = *state_;
  const bool indexed = job.num_elements() != backend::Job::kUnknownSize;
  const mpi::WrittenWindows written = mpi::written_windows(state, job);
  state.agree(Collective::map, {{indexed ? static_cast<std::int64_t>(job.num_elements()) : -1, "collection size"},
                                {job.num_active_workers(), "number of active workers"},
                                {written.fingerprint, "arrays it writes (MapOptions::writes)", written.description}});
  const int active = job.num_active_workers();
  const auto [first, count] = mpi::part_of_map(state.first_worker(), state.local_workers(), active);
  // Arrays that cannot be made whole are found before any kernel runs (the same on every rank).
  const std::vector<mpi::Gather> gathers = mpi::plan_gathers(state, job);
  job.restrict_to_part(first, count);

  Outcome outcome;
  RankJob part(*this, job, first, count, state);
  if (count > 0) {
    try {
      backend::launch(*state.local, part);
      // The check threw on this thread while it ran a share (this rank's caller was interrupted, or
      // another rank's part stopped): the map ends on every rank.
      if (job.interruption()) std::rethrow_exception(job.interruption());
      // One last look, now that this part is done: an interruption that came with its last element
      // (a kernel's KeyboardInterrupt taken for the caller's) fails the map on every rank, not after it.
      if (part.checks_caller()) part.check_caller();
    } catch (const StoppedByAnotherRank&) {
      // Not this rank's failure: the other rank's record is the map's.
    } catch (const WorkerError& error) {
      outcome.failed_worker = first + error.worker_id();
      outcome.local = std::current_exception();
      record_cause(outcome.local, outcome.record);
    } catch (...) {
      // The local context itself failed (it could not start its workers, say), or this rank's caller
      // was interrupted: reported for this rank's first worker, so that every rank hears of it.
      outcome.failed_worker = first;
      outcome.local = std::current_exception();
      record_cause(outcome.local, outcome.record);
      if (part.interrupted()) {
        outcome.record.record("interrupt", "the map was interrupted on rank " + std::to_string(state.rank) + " (" +
                                               std::string(outcome.record.message_text()) + ")");
      }
    }
  }

  int lowest = INT_MAX;
  check_mpi(MPI_Allreduce(&outcome.failed_worker, &lowest, 1, MPI_INT, MPI_MIN, state.comm), "MPI_Allreduce");
  if (lowest != INT_MAX) {
    // Stop messages are part of the failure: receive every one sent to this rank before going on.
    const int told = part.told_other_ranks() ? 1 : 0;
    int tellers = 0;
    check_mpi(MPI_Allreduce(&told, &tellers, 1, MPI_INT, MPI_SUM, state.comm), "MPI_Allreduce");
    receive_stop_messages(state, tellers - told);
    const int owner = state.rank_of_worker(lowest);
    check_mpi(MPI_Bcast(&outcome.record, sizeof(outcome.record), MPI_BYTE, owner, state.comm), "MPI_Bcast");
    if (outcome.local && !is_worker_error(outcome.local)) {
      std::rethrow_exception(outcome.local);  // this rank's own failure (its caller's check, say), as it was
    }
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
  mpi::run_gathers(state, gathers);
}


}  // namespace pasha
