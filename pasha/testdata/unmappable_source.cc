// Must NOT compile: a type that matches no adapter. pasha/compile_fail_test.sh checks the message.
#include <cstddef>

#include "pasha/pasha.h"

struct NotACollection {};

int main() {
  pasha::SerialContext context;
  context.map([](int, std::size_t, int) {}, NotACollection{});
}
