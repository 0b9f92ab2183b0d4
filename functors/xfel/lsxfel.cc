#include "functors/xfel/lsxfel.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "functors/xfel/xfel.h"
#include "pasha/core/context.h"

namespace pasha::xfel {
namespace {

std::string shape_text(const Shape& shape) {
  std::string text = "(";
  for (std::size_t axis = 0; axis < shape.ndim(); ++axis) text += (axis ? ", " : "") + std::to_string(shape[axis]);
  return text + (shape.ndim() == 1 ? ",)" : ")");
}

// Reads every numeric key of every train; returns how many keys and trains failed, and prints them
// (the first few trains).
std::size_t check_every_train(Context& context, const DataCollection& run) {
  std::size_t damaged_keys = 0;
  std::vector<std::pair<std::string, std::string>> keys;
  std::size_t not_numeric = 0;
  for (const std::string& source : run.all_sources()) {
    for (const std::string& key : run.keys_for_source(source)) {
      try {
        (void)run.key_data<double>(source, key);  // checks the type, and every train's rows, once
        keys.emplace_back(source, key);
      } catch (const FormatError& error) {
        if (std::string(error.what()).find("cannot be read as float64") != std::string::npos) {
          ++not_numeric;  // strings
        } else {
          std::printf("  %s %s cannot be read: %s\n", source.c_str(), key.c_str(), error.what());
          ++damaged_keys;
        }
      }
    }
  }
  if (not_numeric > 0) std::printf("  (%zu keys that cannot be read as numbers are left out)\n", not_numeric);
  std::fflush(stdout);
  auto failed = context.alloc<int>(run.size(), {.fill = 0});
  context.map(
      [&](int, std::size_t index, std::uint64_t, const TrainData& train) {
        for (const auto& [source, key] : keys) {
          try {
            (void)train.get<double>(source, key);
          } catch (const std::exception&) {
            failed[index] = 1;
          }
        }
      },
      run, {.progress = true, .progress_every = std::chrono::seconds(2)});
  std::size_t bad = 0;
  for (std::size_t i = 0; i < run.size(); ++i) {
    if (failed[i] == 0) continue;
    if (++bad <= 10) std::printf("  train %llu cannot be read\n", static_cast<unsigned long long>(run.train_ids()[i]));
  }
  return damaged_keys + bad;
}

}  // namespace

int lsxfel(const std::vector<std::string>& args, Context& context) {
  constexpr const char* kUsage =
      "usage: lsxfel RUN_DIRECTORY|FILE.h5 [--keys] [--check]\n"
      "  lists the files, trains and sources of a European XFEL run\n"
      "  --keys   each source's keys, with their entry shapes and types\n"
      "  --check  reads every train of every numeric key; exit status 1 if any cannot be read\n";
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args.empty() || args[0].starts_with("-")) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string& path = args[0];
  bool show_keys = false, check = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--keys") {
      show_keys = true;
    } else if (flag == "--check") {
      check = true;
    } else {
      std::fprintf(stderr, "lsxfel: unknown flag %s; usage: lsxfel RUN_DIRECTORY|FILE.h5 [--keys] [--check]\n",
                   flag.c_str());
      return 2;
    }
  }
  try {
    struct stat info {};
    const bool is_dir = ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
    const DataCollection run =
        is_dir ? RunDirectory(path, {.skip_unreadable_files = true}) : H5File(path);
    const auto& ids = run.train_ids();
    std::printf("%zu files, %zu trains", run.files().size(), ids.size());
    if (!ids.empty()) std::printf(" (%llu - %llu)", static_cast<unsigned long long>(ids.front()),
                                  static_cast<unsigned long long>(ids.back()));
    std::printf("\n");
    for (const auto& [file, reason] : run.skipped_files()) std::printf("skipped %s\n", reason.c_str());
    auto print_sources = [&](const char* title, const std::vector<std::string>& sources) {
      std::printf("\n%zu %s sources:\n", sources.size(), title);
      for (const std::string& source : sources) {
        std::printf("  - %s\n", source.c_str());
        for (const std::string& group : run.index_groups(source)) {
          std::string any_key;
          for (const std::string& key : run.keys_for_source(source)) {
            if (group.empty() || key.starts_with(group + ".")) {
              any_key = key;
              break;
            }
          }
          std::size_t trains_with_data = 0;
          std::uint64_t rows = 0;
          for (std::uint64_t c : run.data_counts(source, any_key)) {
            trains_with_data += c > 0;
            rows += c;
          }
          std::printf("    %s%s: data for %zu of %zu trains, %llu rows\n", group.empty() ? "(control)" : "group ",
                      group.c_str(), trains_with_data, ids.size(), static_cast<unsigned long long>(rows));
        }
        if (show_keys) {
          for (const std::string& key : run.keys_for_source(source)) {
            try {
              const auto kd = run.key_data<double>(source, key);
              const std::optional<ElementType> stored = run.stored_type(source, key);
              std::printf("      %s %s %s\n", key.c_str(), shape_text(kd.entry_shape()).c_str(),
                          stored ? element_type_name(*stored) : "");
            } catch (const FormatError&) {
              std::printf("      %s (not numeric)\n", key.c_str());
            }
          }
        }
      }
    };
    print_sources("control", run.control_sources());
    print_sources("instrument", run.instrument_sources());
    if (check) {
      std::printf("\nreading every train of every numeric key on %d %s workers:\n",
                  context.num_workers(), context.name().c_str());
      std::fflush(stdout);
      const std::size_t problems = run.skipped_files().size() + check_every_train(context, run);
      if (problems == 0) {
        std::printf("  all %zu trains read\n", run.size());
      } else {
        std::printf("  %zu problems\n", problems);
        return 1;
      }
    }
  } catch (const std::exception& error) {
    std::fflush(stdout);
    std::fprintf(stderr, "lsxfel: %s\n", error.what());
    return 1;
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace pasha::xfel
