// pasha::SerialContext: one worker, the calling thread. The reference for what every context does,
// and the context to debug kernels in.
#ifndef PASHA_CONTEXTS_SERIAL_SERIAL_CONTEXT_H_
#define PASHA_CONTEXTS_SERIAL_SERIAL_CONTEXT_H_

#include <memory>
#include <string>

#include "pasha/core/backend.h"

namespace pasha {

// num_workers() == 1; the kernel runs on the thread that calls map. Arrays live on the heap.
class SerialContext final : public Context {
 public:
  SerialContext();
  std::string name() const override { return "serial"; }

 protected:
  std::shared_ptr<void> allocate(std::size_t bytes) override;
  bool allocates_zeros(std::size_t bytes) const override;
  void launch(backend::Job& job) override;
};

}  // namespace pasha

#endif  // PASHA_CONTEXTS_SERIAL_SERIAL_CONTEXT_H_
