#include "contexts/common/binding.h"

#include <hwloc.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pasha {
namespace {

struct TopologyDeleter {
  void operator()(hwloc_topology_t topology) const noexcept { hwloc_topology_destroy(topology); }
};
using Topology = std::shared_ptr<hwloc_topology>;

struct BitmapDeleter {
  void operator()(hwloc_bitmap_t bitmap) const noexcept { hwloc_bitmap_free(bitmap); }
};
using Bitmap = std::unique_ptr<hwloc_bitmap_s, BitmapDeleter>;

Bitmap new_bitmap() {
  Bitmap bitmap(hwloc_bitmap_alloc());
  if (!bitmap) throw std::bad_alloc();
  return bitmap;
}

Bitmap copy_bitmap(hwloc_const_bitmap_t source) {
  Bitmap bitmap(hwloc_bitmap_dup(source));
  if (!bitmap) throw std::bad_alloc();
  return bitmap;
}

std::string list_string(hwloc_const_bitmap_t bitmap) {
  char* text = nullptr;
  if (hwloc_bitmap_list_asprintf(&text, bitmap) < 0 || text == nullptr) throw std::bad_alloc();
  std::string result(text);
  std::free(text);
  return result;
}

// Initialises a topology, lets `configure` set it up (for example as a synthetic one), and loads it.
template <class Configure>
Topology load_topology(Configure&& configure) {
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) throw std::runtime_error("pasha: hwloc_topology_init failed");
  Topology topology(raw, TopologyDeleter{});
  configure(raw);
  if (hwloc_topology_load(raw) != 0) throw std::runtime_error("pasha: hwloc_topology_load failed");
  return topology;
}

// This machine's topology, loaded once per process. hwloc allows concurrent read-only use (queries and
// binding calls) of a loaded topology.
Topology this_machine() {
  static const Topology topology = load_topology([](hwloc_topology_t) {});
  return topology;
}

// The PUs this process may run on: the calling thread's binding (taskset, an inherited or explicit
// affinity; as OpenMP reads it) within the topology's allowed set (cgroups). The union over all
// threads would not do: a thread started before a taskset-like restriction keeps the full mask.
// Falls back to the allowed set when the OS does not say.
Bitmap allowed_cpuset_of_this_process(hwloc_topology_t topology) {
  hwloc_const_cpuset_t topology_allowed = hwloc_topology_get_allowed_cpuset(topology);
  Bitmap bound = new_bitmap();
  if (hwloc_get_cpubind(topology, bound.get(), HWLOC_CPUBIND_THREAD) != 0) return copy_bitmap(topology_allowed);
  Bitmap allowed = new_bitmap();
  if (hwloc_bitmap_and(allowed.get(), bound.get(), topology_allowed) != 0) throw std::bad_alloc();
  if (hwloc_bitmap_iszero(allowed.get())) return copy_bitmap(topology_allowed);
  return allowed;
}

// What a worker is bound to: a physical core (a PU where the topology knows no cores).
hwloc_obj_type_t unit_type_of(hwloc_topology_t topology) {
  return hwloc_get_nbobjs_by_type(topology, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
}

// The allowed units in topology order.
std::vector<hwloc_obj_t> units_in_order(hwloc_topology_t topology, hwloc_const_cpuset_t allowed) {
  std::vector<hwloc_obj_t> units;
  const hwloc_obj_type_t type = unit_type_of(topology);
  for (hwloc_obj_t unit = hwloc_get_next_obj_by_type(topology, type, nullptr); unit != nullptr;
       unit = hwloc_get_next_obj_by_type(topology, type, unit)) {
    if (hwloc_bitmap_intersects(unit->cpuset, allowed)) units.push_back(unit);
  }
  return units;
}

// The allowed units below `object`, interleaved across its children at every level: the first unit
// of each child, then the second of each, and so on, so that consecutive units sit as far apart
// (packages, NUMA nodes, caches) as the tree allows.
std::vector<hwloc_obj_t> units_spread_below(hwloc_obj_t object, hwloc_obj_type_t type, hwloc_const_cpuset_t allowed) {
  if (object->cpuset == nullptr || !hwloc_bitmap_intersects(object->cpuset, allowed)) return {};
  if (object->type == type) return {object};
  std::vector<std::vector<hwloc_obj_t>> per_child;
  std::size_t longest = 0;
  for (hwloc_obj_t child = object->first_child; child != nullptr; child = child->next_sibling) {
    per_child.push_back(units_spread_below(child, type, allowed));
    longest = std::max(longest, per_child.back().size());
  }
  std::vector<hwloc_obj_t> units;
  for (std::size_t i = 0; i < longest; ++i) {
    for (const auto& child_units : per_child) {
      if (i < child_units.size()) units.push_back(child_units[i]);
    }
  }
  return units;
}

// The logical index of the NUMA node whose memory is local to `cpuset`, or -1.
int numa_node_of(hwloc_topology_t topology, hwloc_const_cpuset_t cpuset) {
  for (hwloc_obj_t node = hwloc_get_next_obj_by_type(topology, HWLOC_OBJ_NUMANODE, nullptr); node != nullptr;
       node = hwloc_get_next_obj_by_type(topology, HWLOC_OBJ_NUMANODE, node)) {
    if (node->cpuset != nullptr && hwloc_bitmap_isincluded(cpuset, node->cpuset)) {
      return static_cast<int>(node->logical_index);
    }
  }
  return -1;
}

// `cpuset` as a cpu_set_t of the size the OS wants for it (empty when it has no PU).
std::vector<unsigned char> affinity_of(hwloc_const_cpuset_t cpuset) {
  const int last = hwloc_bitmap_last(cpuset);
  if (last < 0) return {};
  const std::size_t bytes = CPU_ALLOC_SIZE(last + 1);
  std::vector<unsigned char> affinity(bytes, 0);
  auto* set = reinterpret_cast<cpu_set_t*>(affinity.data());
  unsigned pu = 0;
  hwloc_bitmap_foreach_begin(pu, cpuset) {
    CPU_SET_S(pu, bytes, set);
  }
  hwloc_bitmap_foreach_end();
  return affinity;
}

const char* policy_name(Binding policy) {
  switch (policy) {
    case Binding::none:
      return "none";
    case Binding::compact:
      return "compact";
    case Binding::spread:
      return "spread";
  }
  return "unknown";
}

}  // namespace

struct BindingPlan::State {
  struct Worker {
    Bitmap cpuset;
    std::string cpuset_text;
    // The cpuset as the OS takes it, made once: binding then allocates nothing (a worker process that
    // allocated would copy the caller's heap pages it writes).
    std::vector<unsigned char> affinity;
    int unit = -1;  // logical index of the core (or PU), -1 when not bound
    int package = -1;
    int numa_node = -1;
  };

  Topology topology;
  Binding policy = Binding::compact;
  Bitmap allowed;
  hwloc_obj_type_t unit_type = HWLOC_OBJ_CORE;
  int num_units = 0;
  std::vector<Worker> workers;

  static std::unique_ptr<State> make(Topology topology, Bitmap allowed, int num_workers, Binding policy);

  // hwloc reports success without doing anything for a topology that is not this machine's.
  // Binds the calling thread.
  bool bind(int worker_id) const noexcept {
    if (worker_id < 0 || static_cast<std::size_t>(worker_id) >= workers.size()) return false;
    if (!hwloc_topology_is_thissystem(topology.get())) return false;
    const auto& affinity = workers[static_cast<std::size_t>(worker_id)].affinity;
    return !affinity.empty() &&
           sched_setaffinity(0, affinity.size(), reinterpret_cast<const cpu_set_t*>(affinity.data())) == 0;
  }

  const Worker& worker(int worker_id) const {
    if (worker_id < 0 || static_cast<std::size_t>(worker_id) >= workers.size()) {
      throw std::out_of_range("pasha::BindingPlan: worker id " + std::to_string(worker_id) + " is not in [0, " +
                              std::to_string(workers.size()) + ")");
    }
    return workers[static_cast<std::size_t>(worker_id)];
  }
};

std::unique_ptr<BindingPlan::State> BindingPlan::State::make(Topology topology, Bitmap allowed, int num_workers,
                                                              Binding policy) {
  if (num_workers < 1) {
    throw std::invalid_argument("pasha::BindingPlan: num_workers must be at least 1, got " +
                                std::to_string(num_workers));
  }
  if (policy != Binding::none && policy != Binding::compact && policy != Binding::spread) {
    throw std::invalid_argument("pasha::BindingPlan: unknown binding policy " +
                                std::to_string(static_cast<int>(policy)));
  }
  auto state = std::make_unique<State>();
  hwloc_topology_t raw = topology.get();
  state->topology = std::move(topology);
  state->policy = policy;
  state->allowed = std::move(allowed);
  state->unit_type = unit_type_of(raw);

  const std::vector<hwloc_obj_t> units =
      policy == Binding::spread
          ? units_spread_below(hwloc_get_root_obj(raw), state->unit_type, state->allowed.get())
          : units_in_order(raw, state->allowed.get());
  state->num_units = static_cast<int>(units.size());
  if (units.empty()) throw std::runtime_error("pasha::BindingPlan: hwloc found no allowed core or PU");

  state->workers.resize(static_cast<std::size_t>(num_workers));
  for (int w = 0; w < num_workers; ++w) {
    auto& worker = state->workers[static_cast<std::size_t>(w)];
    if (policy == Binding::none) {
      worker.cpuset = copy_bitmap(state->allowed.get());
    } else {
      const hwloc_obj_t unit = units[static_cast<std::size_t>(w) % units.size()];
      worker.cpuset = new_bitmap();
      if (hwloc_bitmap_and(worker.cpuset.get(), unit->cpuset, state->allowed.get()) != 0) throw std::bad_alloc();
      worker.unit = static_cast<int>(unit->logical_index);
      if (const hwloc_obj_t package = hwloc_get_ancestor_obj_by_type(raw, HWLOC_OBJ_PACKAGE, unit)) {
        worker.package = static_cast<int>(package->logical_index);
      }
      worker.numa_node = numa_node_of(raw, unit->cpuset);
    }
    worker.cpuset_text = list_string(worker.cpuset.get());
    worker.affinity = affinity_of(worker.cpuset.get());
  }
  return state;
}

int default_num_workers() {
  const Topology topology = this_machine();
  const Bitmap allowed = allowed_cpuset_of_this_process(topology.get());
  return std::max(1, static_cast<int>(units_in_order(topology.get(), allowed.get()).size()));
}

BindingPlan BindingPlan::for_this_process(int num_workers, Binding policy) {
  Topology topology = this_machine();
  Bitmap allowed = allowed_cpuset_of_this_process(topology.get());
  return BindingPlan(State::make(std::move(topology), std::move(allowed), num_workers, policy));
}

BindingPlan BindingPlan::for_synthetic_topology(std::string_view description, int num_workers, Binding policy) {
  const std::string text(description);
  Topology topology = load_topology([&](hwloc_topology_t raw) {
    if (hwloc_topology_set_synthetic(raw, text.c_str()) != 0) {
      throw std::invalid_argument("pasha::BindingPlan: hwloc rejected the synthetic topology \"" + text + "\"");
    }
  });
  Bitmap allowed = copy_bitmap(hwloc_topology_get_allowed_cpuset(topology.get()));
  return BindingPlan(State::make(std::move(topology), std::move(allowed), num_workers, policy));
}

BindingPlan::BindingPlan(std::unique_ptr<State> state) : state_(std::move(state)) {}
BindingPlan::BindingPlan(BindingPlan&&) noexcept = default;
BindingPlan& BindingPlan::operator=(BindingPlan&&) noexcept = default;
BindingPlan::~BindingPlan() = default;

int BindingPlan::num_workers() const noexcept { return static_cast<int>(state_->workers.size()); }

Binding BindingPlan::policy() const noexcept { return state_->policy; }

int BindingPlan::num_cores() const noexcept { return state_->num_units; }

int BindingPlan::num_numa_nodes() const noexcept {
  std::vector<int> nodes;
  for (const auto& worker : state_->workers) {
    if (worker.numa_node >= 0 && std::find(nodes.begin(), nodes.end(), worker.numa_node) == nodes.end()) {
      nodes.push_back(worker.numa_node);
    }
  }
  return std::max<int>(1, static_cast<int>(nodes.size()));
}

std::string BindingPlan::allowed_cpuset() const { return list_string(state_->allowed.get()); }

std::string BindingPlan::cpuset(int worker_id) const { return state_->worker(worker_id).cpuset_text; }

std::string BindingPlan::describe() const {
  const char* unit_name = state_->unit_type == HWLOC_OBJ_CORE ? "core" : "PU";
  std::string text;
  for (std::size_t w = 0; w < state_->workers.size(); ++w) {
    const auto& worker = state_->workers[w];
    text += "worker " + std::to_string(w) + ": cpuset " + worker.cpuset_text;
    if (state_->policy == Binding::none) {
      text += " (not bound)\n";
      continue;
    }
    text += std::string(" (") + unit_name + " L#" + std::to_string(worker.unit);
    if (worker.package >= 0) text += ", package L#" + std::to_string(worker.package);
    if (worker.numa_node >= 0) text += ", NUMA L#" + std::to_string(worker.numa_node);
    text += ")\n";
  }
  return text;
}

bool BindingPlan::bind_this_thread(int worker_id) const noexcept {
  if (state_->policy == Binding::none) return true;
  return state_->bind(worker_id);
}

std::string to_string(Binding policy) { return policy_name(policy); }

Binding parse_binding(std::string_view name) {
  for (Binding policy : {Binding::none, Binding::compact, Binding::spread}) {
    if (name == policy_name(policy)) return policy;
  }
  throw std::invalid_argument("pasha: unknown binding policy \"" + std::string(name) +
                              "\" (expected none, compact or spread)");
}

}  // namespace pasha
