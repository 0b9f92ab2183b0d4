// Must compile: generic kernels (auto parameters) over n-d and 1-d arrays, as the README shows.
// Whether they also run correctly is checked by the conformance suite.
#include <cstddef>

#include "pasha/pasha.h"

int main() {
  pasha::SerialContext context;
  auto matrix = context.alloc<double>({2, 3}, {.fill = 1});
  auto vector_1d = context.alloc<double>({3}, {.fill = 1});
  auto sums = context.alloc<double>({2}, {.fill = 0});
  auto out = context.alloc<double>({3}, {.fill = 0});
  context.map([&](int, std::size_t i, auto row) {
    for (double v : row) sums[i] += v;
  }, matrix);
  context.map([&](int, std::size_t i, auto v) { out[i] = 3 * v; }, vector_1d);
  return 0;
}
