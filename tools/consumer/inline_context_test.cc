// A third-party context: runs each worker's share in turn on the calling thread, with heap memory.
// It is written against pasha's backend contract alone (pasha/core/backend.h), as any context of your own
// would be, and passes pasha's conformance suite.
#include <memory>
#include <string>

#include "conformance/conformance.h"
#include "pasha/core/backend.h"

namespace consumer {

class InlineContext final : public pasha::Context {
 public:
  explicit InlineContext(int num_workers) : Context(num_workers) {}
  std::string name() const override { return "inline"; }

 protected:
  std::shared_ptr<void> allocate(std::size_t bytes) override {
    return pasha::backend::allocate_heap(bytes, kAlignment);
  }

  void launch(pasha::backend::Job& job) override {
    pasha::backend::WorkerControl control;
    pasha::backend::WorkerFailures failures(job.num_active_workers());
    for (int w = 0; w < job.num_active_workers(); ++w) failures.run(*this, job, w, control);
    failures.rethrow_lowest();
  }
};

}  // namespace consumer

PASHA_INSTANTIATE_CONFORMANCE_SUITE_FOR_WORKER_COUNTS(Inline, consumer::InlineContext, 1, 3);
