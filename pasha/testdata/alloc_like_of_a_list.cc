// Must NOT compile: alloc_like of something that is not array-like (a std::list is not contiguous).
#include <list>

#include "pasha/pasha.h"

int main() {
  pasha::SerialContext context;
  const std::list<double> values(4, 1.0);
  auto a = context.alloc_like(values);
}
