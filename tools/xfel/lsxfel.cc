// Prints what a European XFEL run directory or file holds, like EXtra-data's lsxfel: the train range,
// then each source with its keys (dtype-independent entry shapes) and how many trains have data.
//
//   bazel run //tools/xfel:lsxfel -- path/to/r0450 [--keys]
#include <cstdio>
#include <exception>
#include <string>
#include <sys/stat.h>

#include "functors/xfel/xfel.h"

namespace {

std::string shape_text(const pasha::Shape& shape) {
  std::string text = "(";
  for (std::size_t axis = 0; axis < shape.ndim(); ++axis) text += (axis ? ", " : "") + std::to_string(shape[axis]);
  return text + (shape.ndim() == 1 ? ",)" : ")");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: lsxfel RUN_DIRECTORY|FILE.h5 [--keys]\n");
    return 2;
  }
  const std::string path = argv[1];
  const bool show_keys = argc > 2 && std::string(argv[2]) == "--keys";
  try {
    struct stat info {};
    const bool is_dir = ::stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
    const pasha::xfel::DataCollection run =
        is_dir ? pasha::xfel::RunDirectory(path, {.skip_unreadable_files = true}) : pasha::xfel::H5File(path);
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
              std::printf("      %s %s\n", key.c_str(), shape_text(kd.entry_shape()).c_str());
            } catch (const pasha::xfel::FormatError&) {
              std::printf("      %s (not numeric)\n", key.c_str());
            }
          }
        }
      }
    };
    print_sources("control", run.control_sources());
    print_sources("instrument", run.instrument_sources());
  } catch (const std::exception& error) {
    std::fprintf(stderr, "lsxfel: %s\n", error.what());
    return 1;
  }
  return 0;
}
