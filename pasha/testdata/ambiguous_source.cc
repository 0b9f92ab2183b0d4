// Must NOT compile: a type that is both a functor and a sized random-access range matches two
// adapters. pasha/compile_fail_test.sh checks that the compiler says so.
#include <cstddef>
#include <vector>

#include "pasha/pasha.h"

struct FunctorAndRange : std::vector<int> {
  std::vector<pasha::IndexRange> split(int n) const { return pasha::split_evenly(size(), n); }
  template <class Visit>
  void iterate(const pasha::IndexRange& share, Visit&& visit) const {
    for (std::size_t i = share.begin; i < share.end; ++i) visit(i, (*this)[i]);
  }
};

int main() {
  pasha::SerialContext context;
  context.map([](int, std::size_t, int) {}, FunctorAndRange{});
}
