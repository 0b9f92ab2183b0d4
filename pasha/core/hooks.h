// pasha::MapHook: code that runs around every map of a context, in the caller and in each worker.
#ifndef PASHA_CORE_HOOKS_H_
#define PASHA_CORE_HOOKS_H_

#include <array>
#include <cstddef>
#include <stdexcept>

namespace pasha {

class Context;

// Override the calls you need; the defaults do nothing. Order for one map: pre_map (caller); then for
// each worker that gets a share: pre_worker, that worker's kernel calls, post_worker (in the worker:
// a thread, or the worker process itself); then post_map (caller). With several hooks, pre_* run in
// the order the hooks were added and post_* in reverse, like constructors and destructors: pasha's one
// hook order, for a context's hooks, a kernel's own (helpers) and the Python package's MapHooks alike
// (python/pasha/util.py; run by detail::run_between).
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
// A context's hooks are not called for a nested map (a map started from inside a kernel).
class MapHook {
 public:
  virtual ~MapHook() = default;
  virtual void pre_map(Context& /*context*/) {}
  virtual void pre_worker(Context& /*context*/, int /*worker_id*/) {}
  virtual void post_worker(Context& /*context*/, int /*worker_id*/) {}
  virtual void post_map(Context& /*context*/) {}
};

// Hooks for one map only, brought by its kernel (the helpers of pasha/core/helpers.h, and the Python
// package's kernels, are such kernels). A kernel type that has all three of
//
//   void pasha_add_map_hooks(pasha::MapHookList& hooks) const;   // adds its hooks, outer ones first
//   void pasha_prepare_results(pasha::Context& context) const;   // once the map has succeeded
//   void pasha_commit_results() const noexcept;
//
// has its hooks called after the context's, by the same rules, in every map it is given to, nested
// ones included; and once the map has succeeded, post_map hooks included, the caller calls
// pasha_prepare_results, which combines the kernel's results into their place (the kernels it wraps
// first) and keeps what undoing them takes; if it fails, it undoes what it and the kernels it wraps
// combined, and throws (the map then fails, its results as they were). Then pasha_commit_results,
// which cannot fail, lets the undo go. A kernel that wraps others may also have
//
//   void pasha_undo_results() const noexcept;   // restores what pasha_prepare_results combined
//
// for the kernels around it to call. The hooks must live until the map returns.
class MapHookList {
 public:
  static constexpr std::size_t kCapacity = 64;
  // Throws std::length_error past kCapacity.
  void add(MapHook* hook) {
    if (size_ == kCapacity) throw std::length_error("pasha: more than 64 hooks for one map (helpers or Python MapHooks around one kernel)");
    hooks_[size_++] = hook;
  }
  std::size_t size() const noexcept { return size_; }
  MapHook* operator[](std::size_t i) const noexcept { return hooks_[i]; }

 private:
  std::array<MapHook*, kCapacity> hooks_{};
  std::size_t size_ = 0;
};

}  // namespace pasha

#endif  // PASHA_CORE_HOOKS_H_
