#include "contexts/serial/serial_context.h"

namespace pasha {

SerialContext::SerialContext() : Context(1) {}

std::shared_ptr<void> SerialContext::allocate(std::size_t bytes) { return backend::allocate_heap(bytes, kAlignment); }

bool SerialContext::allocates_zeros(std::size_t bytes) const { return backend::heap_reads_as_zeros(bytes, kAlignment); }

void SerialContext::launch(backend::Job& job) {
  backend::WorkerControl control;
  backend::WorkerFailures failures(job.num_active_workers());
  for (int worker = 0; worker < job.num_active_workers(); ++worker) failures.run(*this, job, worker, control);
  failures.rethrow_lowest();
}

}  // namespace pasha
