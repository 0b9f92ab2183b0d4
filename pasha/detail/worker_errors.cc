#include "pasha/detail/worker_errors.h"

#include "pasha/errors.h"

namespace pasha::detail {

void WorkerErrors::rethrow_first() const {
  for (std::size_t worker = 0; worker < errors_.size(); ++worker) {
    if (errors_[worker]) throw_worker_error(static_cast<int>(worker), errors_[worker]);
  }
}

}  // namespace pasha::detail
