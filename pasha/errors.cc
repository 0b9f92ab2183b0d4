#include "pasha/errors.h"

#include <utility>

namespace pasha {

WorkerError::WorkerError(int worker_id, const std::string& what)
    : std::runtime_error(what), worker_id_(worker_id) {}

RemoteError::RemoteError(std::string type_name, const std::string& message)
    : std::runtime_error(message), type_name_(std::move(type_name)) {}

}  // namespace pasha
