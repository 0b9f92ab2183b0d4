// Prints the worker binding plan of this machine, or of a synthetic hwloc topology:
//
//   bazel run //tools:topology -- [--workers N] [--policy compact|spread|none]
//                                 [--synthetic "pack:2 numa:2 core:4 pu:2"]
//
// Without --workers, the plan has the default worker count (one per allowed core of this process).
#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "contexts/common/binding.h"

namespace {

constexpr const char* kUsage =
    "usage: topology [--workers N] [--policy compact|spread|none] [--synthetic \"pack:2 numa:2 core:4 pu:2\"]\n";

int parse_workers(const std::string& text) {
  std::size_t used = 0;
  int workers = 0;
  try {
    workers = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || workers < 1) {
    throw std::invalid_argument("--workers needs a positive integer, got \"" + text + "\"");
  }
  return workers;
}

int run(int argc, char** argv) {
  std::optional<int> workers;
  pasha::Binding policy = pasha::Binding::compact;
  std::optional<std::string> synthetic;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (flag != "--workers" && flag != "--policy" && flag != "--synthetic") {
      throw std::invalid_argument("unknown argument \"" + std::string(flag) + "\"");
    }
    if (i + 1 == argc) throw std::invalid_argument(std::string(flag) + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--workers") workers = parse_workers(value);
    if (flag == "--policy") policy = pasha::parse_binding(value);
    if (flag == "--synthetic") synthetic = value;
  }

  const int num_workers = workers.value_or(synthetic ? 1 : pasha::default_num_workers());
  pasha::BindingPlan plan = synthetic ? pasha::BindingPlan::for_synthetic_topology(*synthetic, num_workers, policy)
                                      : pasha::BindingPlan::for_this_process(num_workers, policy);
  if (!workers && synthetic) {
    // The synthetic machine's own default: one worker per core.
    plan = pasha::BindingPlan::for_synthetic_topology(*synthetic, plan.num_cores(), policy);
  }
  std::printf("topology: %s\n", synthetic ? ("synthetic \"" + *synthetic + "\"").c_str() : "this machine");
  std::printf("allowed cpuset: %s (%d cores)\n", plan.allowed_cpuset().c_str(), plan.num_cores());
  std::printf("policy: %s, %d workers\n", pasha::to_string(plan.policy()).c_str(), plan.num_workers());
  std::fputs(plan.describe().c_str(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "topology: %s\n%s", e.what(), kUsage);
    return 2;
  }
}
