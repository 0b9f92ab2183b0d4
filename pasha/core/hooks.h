// pasha::MapHook: code that runs around every map of a context, in the caller and in each worker.
#ifndef PASHA_CORE_HOOKS_H_
#define PASHA_CORE_HOOKS_H_

namespace pasha {

class Context;

// Override the calls you need; the defaults do nothing. Order for one map: pre_map (caller); then for
// each worker that gets a share: pre_worker, that worker's kernel calls, post_worker (in the worker:
// a thread, or the worker process itself); then post_map (caller). With several hooks, pre_* run in
// the order the hooks were added and post_* in reverse, like constructors and destructors.
//
// Failure paths: every hook whose pre_map returned gets its post_map, and every hook whose pre_worker
// returned gets that worker's post_worker, whatever failed in between (a kernel, another hook, a
// sibling worker). If a hook's pre_* throws, later hooks' pre_* and the work they guard do not run:
// a pre_map that throws stops the map (map rethrows it; no worker runs), a pre_worker that throws
// fails that worker like a kernel exception. The first failure is the one reported; an exception from
// a post_* call after an earlier failure is dropped. The one exception to "post always runs": a worker
// process that dies, or that pasha has to kill because it did not stop after a sibling failed
// (contexts/processes/process_context.h), runs nothing more.
//
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

#endif  // PASHA_CORE_HOOKS_H_
