// pasha::MapHook: code that runs around every map of a context, in the caller and in each worker.
#ifndef PASHA_HOOKS_H_
#define PASHA_HOOKS_H_

namespace pasha {

class Context;

// Override the calls you need; the defaults do nothing. Order for one map: pre_map (caller); then for
// each worker that gets a share: pre_worker, that worker's kernel calls, post_worker (in the worker:
// a thread, or the worker process itself); then post_map (caller).
//
// post_map runs after a failed map too (all workers have stopped by then), so it can release what
// pre_map acquired; an exception it throws then is dropped in favour of the map's WorkerError.
// An exception from pre_worker or post_worker fails that worker like a kernel exception.
// Hooks are not called for a nested map (a map started from inside a kernel).
class MapHook {
 public:
  virtual ~MapHook() = default;
  virtual void pre_map(Context& /*context*/) {}
  virtual void pre_worker(Context& /*context*/, int /*worker_id*/) {}
  virtual void post_worker(Context& /*context*/, int /*worker_id*/) {}
  virtual void post_map(Context& /*context*/) {}
};

}  // namespace pasha

#endif  // PASHA_HOOKS_H_
