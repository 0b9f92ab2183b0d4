// A third-party context: runs each worker's share in turn on the calling thread, with heap
// memory. It exists to show that a context written outside pasha passes pasha's conformance suite.
#include <exception>
#include <memory>
#include <new>
#include <vector>

#include "conformance/conformance.h"
#include "pasha/pasha.h"

namespace consumer {

class InlineContext final : public pasha::Context {
 public:
  explicit InlineContext(int num_workers) : Context(num_workers) {}
  std::string name() const override { return "inline"; }

 protected:
  std::shared_ptr<void> allocate(std::size_t bytes) override {
    return std::shared_ptr<void>(::operator new(bytes + 1, std::align_val_t{kAlignment}),
                                 [](void* p) { ::operator delete(p, std::align_val_t{kAlignment}); });
  }

  void launch(pasha::detail::Job& job) override {
    pasha::detail::WorkerControl control;
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(job.num_active_workers()));
    for (int w = 0; w < job.num_active_workers(); ++w) {
      try {
        pasha::detail::run_worker(*this, job, w, control);
      } catch (...) {
        errors[static_cast<std::size_t>(w)] = std::current_exception();
        control.cancelled = true;
      }
    }
    for (std::size_t w = 0; w < errors.size(); ++w) {
      if (errors[w]) pasha::detail::throw_worker_error(static_cast<int>(w), errors[w]);
    }
  }
};

}  // namespace consumer

PASHA_INSTANTIATE_CONFORMANCE_SUITE_FOR_WORKER_COUNTS(Inline, consumer::InlineContext, 1, 3);
