// The README's example of a map across nodes: every rank runs this program (SPMD).
//
//   tools/bazel build //tools/examples:mpi_map
//   mpirun -np 4 .bazel/bin/tools/examples/mpi_map                   # one machine
//   srun -N 2 --ntasks-per-node=2 .bazel/bin/tools/examples/mpi_map  # a Slurm cluster
//
// It checks its own result on every rank, and exits non-zero if anything is wrong.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "contexts/mpi/mpi_context.h"
#include "pasha/pasha.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  bool ok = true;
  {
    pasha::MpiContext ctx(std::make_shared<pasha::ThreadContext>());  // this rank's workers: threads
    std::vector<double> input(1'000'000);
    for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<double>(i);
    auto out = ctx.alloc<double>(input.size());                            // index-aligned: whole after map
    auto partial = ctx.alloc<double>({}, {.fill = 0, .per_worker = true});  // per worker: whole after map
    ctx.map([&](int worker, std::size_t i, double v) {
      out[i] = std::sqrt(v);
      partial[worker] += v;
    }, input);
    double total = 0;
    for (double p : partial) total += p;
    ok = total == 0.5 * 999'999.0 * 1'000'000.0 && out[999'999] == std::sqrt(999'999.0) && out[4] == 2.0;
    if (ctx.rank() == 0) {
      std::printf("%d ranks on %d nodes, %d workers: total %.0f, out[999999] = %.3f: %s\n", ctx.num_ranks(),
                  ctx.num_nodes(), ctx.num_workers(), total, out[999'999], ok ? "ok" : "WRONG");
    }
  }
  MPI_Finalize();
  return ok ? 0 : 1;
}
