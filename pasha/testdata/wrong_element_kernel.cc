// Must NOT compile: a kernel over an Array<double> that accepts neither elements nor sub-arrays.
// pasha/compile_fail_test.sh checks that the compiler says what to accept.
#include <cstddef>
#include <string>

#include "pasha/pasha.h"

int main() {
  pasha::SerialContext context;
  auto matrix = context.alloc<double>({2, 3});
  context.map([](int, std::size_t, const std::string&) {}, matrix);
}
