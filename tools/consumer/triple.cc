// The quick guide of the README: triple every element, in every context, results written in place.
#include <cstdio>
#include <vector>

#include "pasha/pasha.h"

int main() {
  std::vector<double> inp(100, 1.5);
  pasha::Array<double> outp = pasha::alloc<double>({100});  // from the default context (processes)
  pasha::map([&](int, std::size_t index, double value) { outp[index] = 3 * value; }, inp);

  for (const char* name : {"serial", "threads", "processes"}) {
    pasha::set_default_context(name, name == std::string("serial") ? 1 : 2);
    pasha::Array<double> out = pasha::alloc<double>({100}, {.fill = 0});
    pasha::map([&](int, std::size_t index, double value) { out[index] = 3 * value; }, inp);
    double sum = 0;
    for (double v : out) sum += v;
    std::printf("%-9s %d workers: sum of tripled values = %g\n", name, pasha::default_context().num_workers(), sum);
    if (sum != 450.0) return 1;
  }
  return outp[99] == 4.5 ? 0 : 1;
}
