// Where workers run: binding plans computed from the hwloc topology, shared by the thread and process
// contexts.
//
// A plan is a pure function of the topology, the process's allowed cpuset, the worker count and the
// policy, so it can be checked against synthetic topologies. Workers beyond the number of cores wrap
// around (worker k shares the core of worker k mod cores).
#ifndef PASHA_CONTEXTS_COMMON_BINDING_H_
#define PASHA_CONTEXTS_COMMON_BINDING_H_

#include <memory>
#include <string>
#include <string_view>

#include "pasha/core/backend.h"

namespace pasha {

enum class Binding {
  // Workers are not bound; the OS places them within the process's allowed cpuset.
  none,
  // One worker per physical core, filling cores in topology order (neighbouring workers share caches).
  compact,
  // One worker per physical core, spread round-robin across packages and NUMA nodes first.
  spread,
};

// "none", "compact" or "spread".
std::string to_string(Binding policy);
// The policy named by to_string; throws std::invalid_argument for any other name.
Binding parse_binding(std::string_view name);

// The number of physical cores this process may run on, at least 1: the cores holding a PU of the
// calling thread's affinity (which reflects taskset and sched_setaffinity; read as OpenMP does) within
// what cgroups allow. The default worker count of the thread and process contexts.
int default_num_workers();

class BindingPlan {
 public:
  // The plan for this machine, restricted to the cpuset this process may run on (as for
  // default_num_workers).
  static BindingPlan for_this_process(int num_workers, Binding policy);
  // The plan for a synthetic hwloc topology such as "pack:2 numa:2 core:4 pu:2" (all PUs allowed).
  // Throws std::invalid_argument naming the description when hwloc rejects it.
  static BindingPlan for_synthetic_topology(std::string_view description, int num_workers, Binding policy);

  BindingPlan(BindingPlan&&) noexcept;
  BindingPlan& operator=(BindingPlan&&) noexcept;
  ~BindingPlan();

  int num_workers() const noexcept;
  Binding policy() const noexcept;
  // How many physical cores (PUs where the topology knows no cores) the plan may use; workers beyond
  // this count wrap around.
  int num_cores() const noexcept;
  // How many NUMA nodes the workers sit on (1 when the topology shows none, or for Binding::none).
  int num_numa_nodes() const noexcept;
  // The cpuset the plan was made for (what this process may run on), as hwloc prints lists.
  std::string allowed_cpuset() const;
  // The worker's cpuset as hwloc prints lists, for example "0" or "2-3" (the whole allowed set for
  // Binding::none). A worker gets all PUs of its core. Throws std::out_of_range for a bad worker id.
  std::string cpuset(int worker_id) const;
  // One line per worker: "worker 0: cpuset 0 (core L#0, package L#0, NUMA L#0)" (or "(not bound)"
  // for Binding::none).
  std::string describe() const;
  // Binds the calling thread (Binding::none: does nothing). Returns false if the OS refused (always
  // for a synthetic topology's plan, which is not this machine). In a single-threaded worker process
  // this binds the process: threads it starts later inherit the cpuset.
  bool bind_this_thread(int worker_id) const noexcept;

 private:
  struct State;
  explicit BindingPlan(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// A context whose workers are bound to cpusets by a BindingPlan, made once at construction: the base
// of the thread and process contexts.
class BoundContext : public Context {
 public:
  // The cpuset worker `worker_id` is bound to, as hwloc prints lists ("0", "2-3"). Throws
  // std::out_of_range for a worker id outside [0, num_workers()).
  std::string binding(int worker_id) const { return plan_.cpuset(worker_id); }
  const BindingPlan& binding_plan() const noexcept { return plan_; }

 protected:
  // Throws std::invalid_argument unless 1 <= num_workers <= kMaxWorkers.
  BoundContext(int num_workers, Binding policy)
      : Context(num_workers), plan_(BindingPlan::for_this_process(num_workers, policy)) {}

  const BindingPlan plan_;
};

}  // namespace pasha

#endif  // PASHA_CONTEXTS_COMMON_BINDING_H_
