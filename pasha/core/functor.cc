#include "pasha/core/functor.h"

#include <stdexcept>
#include <string>

namespace pasha {

std::vector<IndexRange> split_evenly(std::size_t size, int num_workers) {
  if (num_workers < 1) {
    throw std::invalid_argument("pasha: cannot split among " + std::to_string(num_workers) + " workers");
  }
  const std::size_t parts = std::min(size, static_cast<std::size_t>(num_workers));
  std::vector<IndexRange> shares;
  shares.reserve(parts);
  for (std::size_t i = 0; i < parts; ++i) {
    // i * size / parts, without overflow for sizes near SIZE_MAX.
    auto boundary = [&](std::size_t k) {
      return static_cast<std::size_t>(static_cast<unsigned __int128>(k) * size / parts);
    };
    shares.push_back({boundary(i), boundary(i + 1)});
  }
  return shares;
}

}  // namespace pasha
