// Must NOT compile: arrays of types that are not trivially copyable.
#include <string>

#include "pasha/pasha.h"

int main() {
  pasha::SerialContext context;
  auto a = context.alloc<std::string>({4});
}
