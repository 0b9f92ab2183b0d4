#include "contexts/serial_context.h"

#include "pasha/detail/heap_memory.h"
#include "pasha/detail/worker_errors.h"

namespace pasha {

SerialContext::SerialContext() : Context(1) {}

std::shared_ptr<void> SerialContext::allocate(std::size_t bytes) { return detail::allocate_heap(bytes, kAlignment); }

void SerialContext::launch(detail::Job& job) {
  detail::WorkerControl control;
  detail::WorkerErrors errors(job.num_active_workers());
  for (int worker = 0; worker < job.num_active_workers(); ++worker) errors.run(*this, job, worker, control);
  errors.rethrow_first();
}

}  // namespace pasha
