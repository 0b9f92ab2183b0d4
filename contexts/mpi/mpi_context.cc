#include "contexts/mpi/mpi_context.h"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <exception>
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

// This rank's part of a map: local worker w runs global worker first + w of the map's job, as a worker
// of the MpiContext (its hooks, its worker id).
class RankJob final : public backend::Job {
 public:
  RankJob(Context& context, backend::Job& job, int first, int count) : context_(context), job_(job), first_(first) {
    num_active_workers_ = count;
    num_elements_ = job.num_elements();
    take_caller_check_from(job);
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
  if (count > 0) {
    RankJob part(*this, job, first, count);
    try {
      backend::launch(*state.local, part);
      // The caller's check threw on this thread while it ran a share: the map ends on every rank.
      if (job.interruption()) std::rethrow_exception(job.interruption());
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
