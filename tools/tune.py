#!/usr/bin/python3
"""The answer of map_bench for this machine: which context, how many workers, from which size on.

    tools/bazel run //benchmarks:map_bench                 # the default sweep (about 2 minutes), then the report
    tools/bazel run //benchmarks:map_bench -- --full       # every size, workload and fork-scaling point
    tools/bazel run //benchmarks:map_bench -- --json F     # report on an earlier run's JSON, without running
    tools/bazel run //benchmarks:map_bench -- --filter RE  # only some benchmarks (a Google Benchmark regex)

Runs map_bench_bin (showing progress), then prints the tuning table (best pasha context and worker count
per workload and size, its speed-up over serial, the best hand-written peer and copy-based IPC baseline),
the sizes from which threads and processes pay off, the ratios the project tracks, and the cost of
starting worker processes against parent size and worker count (with a projection for a 64-core node).
Writes map_bench.json and the plot map_bench.png into the directory it was started from.

Every figure is the median of the repetitions (5 by default), and repetitions of different benchmarks
are interleaved, so that ratios compare measurements taken side by side.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
from collections import defaultdict

PASHA = ("serial", "threads", "processes")
PEERS = ("openmp", "std_thread", "fork_loop")
IPC = ("pipe", "socketpair", "gather")
TUNING_WORKLOADS = ("triple", "compute", "rows")
NAME = re.compile(r"^BM_(?P<impl>[a-z_]+)/(?P<workload>[a-z_]+)/(?P<arg>n|ballast_mb):(?P<n>\d+)/workers:(?P<workers>\d+)")
PROJECTED_CORES = 64


FORK_SCALING_BALLASTS_MB = (0, 1024, 2048)

# Whether Google Benchmark said its library is a debug build (Debian's libbenchmark is).
DEBUG_LIBRARY_SEEN = [False]


def run_part(binary, json_path, args, extra, done, total):
    """Runs one part of the benchmarks, printing progress; returns how many benchmarks it ran."""
    command = [binary, "--benchmark_out=" + json_path, "--benchmark_out_format=json",
               "--benchmark_repetitions=%d" % args.repetitions, "--benchmark_report_aggregates_only=true",
               "--benchmark_enable_random_interleaving=true", "--benchmark_min_time=%g" % args.min_time,
               "--benchmark_color=false"] + extra
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as bench:
        for line in bench.stdout:
            if "_median" in line and line.startswith("BM_"):
                done += 1
                name = line.split()[0].replace("/real_time_median", "")
                sys.stderr.write(f"[{done}/{total}] {name}  {' '.join(line.split()[1:3])}\n")
            elif "Library was built as DEBUG" in line:
                DEBUG_LIBRARY_SEEN[0] = True  # explained once, with the results
            elif line.startswith("***WARNING***") or line.startswith("ERROR") or "error" in line.lower():
                sys.stderr.write(line)
    if bench.returncode != 0:
        sys.exit(f"map_bench failed with exit code {bench.returncode}")
    return done


def run_map_bench(binary, json_path, args):
    """Runs the tuning part, then the fork-scaling part once per ballast (each process holding its
    ballast for its whole run), with progress on stderr; merges their JSON into json_path."""
    common = (["--sweep=full"] if args.full else []) + (["--benchmark_filter=" + args.filter] if args.filter else [])
    parts = [[]] + [[f"--fork_scaling_ballast_mb={mb}"] for mb in FORK_SCALING_BALLASTS_MB]
    counts = []
    for part in parts:
        listed = subprocess.run([binary, "--benchmark_list_tests"] + common + part, capture_output=True, text=True,
                                check=True)
        counts.append(len([line for line in listed.stdout.splitlines() if line.strip()]))
    total = sum(counts)
    sys.stderr.write(f"map_bench: {total} benchmarks, {args.repetitions} repetitions each"
                     f"{' (full sweep)' if args.full else ''}\n")
    merged = None
    done = 0
    for part, count in zip(parts, counts):
        if count == 0:
            continue
        part_json = json_path + ".part"
        done = run_part(binary, part_json, args, common + part, done, total)
        with open(part_json) as f:
            data = json.load(f)
        os.remove(part_json)
        if merged is None:
            merged = data
        else:
            merged["benchmarks"].extend(data["benchmarks"])
    with open(json_path, "w") as f:
        json.dump(merged or {"benchmarks": []}, f, indent=1)


def load(json_path):
    """{(workload, n): {(impl, workers): seconds}} from the medians of map_bench's JSON."""
    with open(json_path) as f:
        data = json.load(f)
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    results = defaultdict(dict)
    for bench in data["benchmarks"]:
        if bench.get("error_occurred"):
            continue
        if bench.get("run_type") == "aggregate" and bench.get("aggregate_name") != "median":
            continue
        match = NAME.match(bench["name"])
        if not match:
            continue
        key = (match["workload"], int(match["n"]))
        results[key][(match["impl"], int(match["workers"]))] = bench["real_time"] * scale[bench["time_unit"]]
    return data.get("context", {}), results


def best(times, impls):
    candidates = [(t, impl, w) for (impl, w), t in times.items() if impl in impls]
    return min(candidates) if candidates else None


def fmt_rate(n, seconds):
    rate = n / seconds
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rate >= size:
            return f"{rate / size:.1f}{unit}/s"
    return f"{rate:.0f}/s"


def fmt_time(seconds):
    for unit, size in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def print_tuning_table(results):
    print(f"{'workload':<9} {'n':>11}  {'best pasha':<14} {'items/s':>9} {'vs serial':>9}  "
          f"{'best peer':<20} {'best IPC':<16} {'zero-copy vs IPC':>16}")
    for (workload, n) in sorted(k for k in results if k[0] in TUNING_WORKLOADS):
        times = results[(workload, n)]
        pasha = best(times, PASHA)
        if pasha is None:
            continue
        serial = times.get(("serial", 1))
        peer = best(times, PEERS)
        ipc = best(times, IPC)
        processes = best(times, ("processes",))
        speedup = f"{serial / pasha[0]:.2f}x" if serial else "-"
        peer_text = f"{peer[1]}/{peer[2]} {pasha[0] / peer[0]:.2f}" if peer else "-"
        ipc_text = f"{ipc[1]}/{ipc[2]}" if ipc else "-"
        zero_copy = f"{ipc[0] / processes[0]:.2f}x faster" if ipc and processes else "-"
        print(f"{workload:<9} {n:>11}  {pasha[1] + '/' + str(pasha[2]):<14} {fmt_rate(n, pasha[0]):>9} "
              f"{speedup:>9}  {peer_text:<20} {ipc_text:<16} {zero_copy:>16}")
    print("(best peer: name/workers and the best pasha time as a fraction of the peer's; lower is better)")


def print_payoff(results):
    """The smallest size from which each parallel context beats serial by 10% or more, for good."""
    print("\nFrom which size a context pays off (beats serial by at least 10% at that size and every larger one):")
    for workload in TUNING_WORKLOADS:
        sizes = sorted(n for (w, n) in results if w == workload)
        if not sizes:
            continue
        parts = []
        for kind in ("threads", "processes"):
            paying = [n for n in sizes if best(results[(workload, n)], (kind,)) and results[(workload, n)].get(("serial", 1))
                      and results[(workload, n)][("serial", 1)] / best(results[(workload, n)], (kind,))[0] >= 1.1]
            start = None
            for n in reversed(sizes):
                if n in paying:
                    start = n
                else:
                    break
            parts.append(f"{kind} from n = {start:,}" if start else f"{kind}: not within the sizes measured")
        print(f"  {workload:<8} " + "; ".join(parts))


def ratio(results, workload, n, a, b):
    times = results.get((workload, n), {})
    if a in times and b in times:
        return times[a] / times[b]
    return None


def tracked_ratios(results, workers):
    """The ratios the issues set targets for: (label, value, target, met)."""
    rows = []

    def add(label, value, limit, reported_only=False):
        if value is not None:
            rows.append((label, value, "(reported)" if reported_only else f"<= {limit}",
                         True if reported_only else value <= limit))

    for n in (1_000_000, 10_000_000, 50_000_000):
        add(f"threads vs OpenMP, triple n={n:.0e}", ratio(results, "triple", n, ("threads", workers), ("openmp", workers)), 1.05)
    for n in (10_000_000, 50_000_000, 100_000_000):
        add(f"processes vs fork loop, triple n={n:.0e}",
            ratio(results, "triple", n, ("processes", workers), ("fork_loop", workers)), 0.6)
    for n in sorted(n for (w, n) in results if w == "triple" and n >= 1_000_000):
        times = results[("triple", n)]
        ipc, proc = best(times, IPC), best(times, ("processes",))
        if ipc and proc:
            add(f"processes vs best IPC ({ipc[1]}), triple n={n:.0e}", proc[0] / ipc[0], 0.5)
    add("threads map of no elements vs empty OpenMP region",
        ratio(results, "empty", 0, ("threads", workers), ("openmp", workers)), 2)
    add("threads map of 1e3 empty kernels vs OpenMP parallel for of 1e3",
        ratio(results, "empty", 1000, ("threads", workers), ("openmp", workers)), 2)
    add(f"processes empty map vs fork loop ({workers} workers)",
        ratio(results, "empty", workers, ("processes", workers), ("fork_loop", workers)), 0, reported_only=True)
    for kind in ("threads", "processes"):
        static = results.get(("imbalanced_static", 100_000), {}).get((kind, 2))
        dynamic = results.get(("imbalanced_dynamic", 100_000), {}).get((kind, 2))
        add(f"{kind}: dynamic vs static schedule, imbalanced kernel", dynamic / static if static and dynamic else None, 0.67)
    for w, limit in ((32, 0.6), (16, 0.7)):
        add(f"process map vs fork loop, empty kernel, 2 GiB parent, {w} workers",
            ratio(results, "fork_empty", 2048, ("processes", w), ("fork_loop", w)), limit)
    return rows


def print_tracked_ratios(rows):
    print("\nTracked ratios (time of the first over the second, medians measured side by side in this run):")
    for label, value, target, met in rows:
        print(f"  {label:<66} {value:6.3f}  target {target:<10} {'' if met else 'MISSED'}")


def per_fork_cost(results, ballast):
    """Seconds per fork from a parent of `ballast` MiB: the slope of the fork loop's latency over workers."""
    points = sorted((w, t) for (impl, w), t in results.get(("fork_empty", ballast), {}).items() if impl == "fork_loop")
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return max(slope, 0.0)


def print_fork_scaling(results):
    ballasts = sorted(n for (w, n) in results if w == "fork_empty")
    if not ballasts:
        return
    workers = sorted({w for b in ballasts for (impl, w) in results[("fork_empty", b)]})
    print("\nStarting worker processes: an empty process map from its call to its return, against a fork loop")
    print("(fork, run, waitpid each worker), by parent size (ballast) and worker count; ratio = pasha / loop:")
    print(f"  {'ballast':>8} " + " ".join(f"{w:>17}" for w in workers))
    for b in ballasts:
        times = results[("fork_empty", b)]
        cells = []
        for w in workers:
            p, l = times.get(("processes", w)), times.get(("fork_loop", w))
            cells.append(f"{fmt_time(p):>8}/{fmt_time(l):>8}" if p and l else f"{'-':>17}")
        print(f"  {b:>5} MB " + " ".join(f"{c:>17}" for c in cells))
        print(f"  {'ratio':>8} " + " ".join(
            f"{times[('processes', w)] / times[('fork_loop', w)]:>17.2f}" if ("processes", w) in times and
            ("fork_loop", w) in times else f"{'-':>17}" for w in workers))
    print(f"\nProjection for a {PROJECTED_CORES}-core node (computed, not measured): from the per-fork cost measured here")
    print("(the fork loop's slope), a sequential fork loop takes workers x cost; pasha's tree takes ceil(log2(workers + 1))")
    print(f"rounds of one fork each, when every worker has a core of its own (on this {os.cpu_count()}-core machine forks")
    print("and exits of many workers compete for the same cores, which is what limits the measured ratio):")
    for b in ballasts:
        cost = per_fork_cost(results, b)
        if not cost:
            continue
        row = []
        for w in (8, 16, 32, 64):
            sequential, tree = w * cost, math.ceil(math.log2(w + 1)) * cost
            row.append(f"{w} workers {fmt_time(sequential)} vs {fmt_time(tree)} ({tree / sequential:.2f})")
        print(f"  {b:>5} MB parent, {fmt_time(cost)} per fork: " + "; ".join(row))


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is missing (tools/bazel installs python3-matplotlib): no plot written", file=sys.stderr)
        return
    workloads = [w for w in TUNING_WORKLOADS if any(k[0] == w for k in results)]
    with_fork = any(k[0] == "fork_empty" for k in results)
    panels = len(workloads) + (1 if with_fork else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5.5), squeeze=False)
    for ax, workload in zip(axes[0], workloads):
        sizes = sorted(n for (w, n) in results if w == workload)
        series = defaultdict(dict)
        for n in sizes:
            for (impl, workers), seconds in results[(workload, n)].items():
                series[(impl, workers)][n] = n / seconds
        for (impl, workers), points in sorted(series.items()):
            xs = sorted(points)
            style = "-" if impl in PASHA else ("--" if impl in PEERS else ":")
            ax.plot(xs, [points[x] for x in xs], style, marker="o", markersize=3, label=f"{impl}/{workers}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{workload}: throughput against size\n(pasha solid, peers dashed, copy-based IPC dotted)")
        ax.set_xlabel("elements")
        ax.set_ylabel("elements per second")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    if with_fork:
        ax = axes[0][-1]
        for b in sorted(n for (w, n) in results if w == "fork_empty"):
            times = results[("fork_empty", b)]
            for impl, style in (("processes", "-"), ("fork_loop", "--")):
                points = sorted((w, t) for (i, w), t in times.items() if i == impl)
                if points:
                    ax.plot([p[0] for p in points], [p[1] * 1e3 for p in points], style, marker="o", markersize=3,
                            label=f"{'pasha' if impl == 'processes' else 'fork loop'}, {b} MB parent")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title("starting workers: empty process map vs fork loop\n(latency, lower is better)")
        ax.set_xlabel("workers")
        ax.set_ylabel("milliseconds")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"\nplot written to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", help="the map_bench_bin to run (the Bazel target passes it)")
    parser.add_argument("--json", help="report on this map_bench JSON instead of running map_bench")
    parser.add_argument("--full", action="store_true", help="the full sweep (takes far longer)")
    parser.add_argument("--filter", help="run only the benchmarks matching this regex")
    parser.add_argument("--repetitions", type=int, default=5, help="repetitions of each benchmark (medians are used)")
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds each repetition runs at least")
    parser.add_argument("--out-dir", default=os.environ.get("BUILD_WORKING_DIRECTORY", "."),
                        help="where map_bench.json and map_bench.png go (default: where you started)")
    args = parser.parse_args()

    json_path = args.json
    if not json_path:
        if not args.binary:
            sys.exit("tune.py: give --binary (or run it as tools/bazel run //benchmarks:map_bench) or --json")
        json_path = os.path.join(args.out_dir, "map_bench.json")
        run_map_bench(args.binary, json_path, args)
    context, results = load(json_path)
    if not results:
        sys.exit(f"no map_bench results in {json_path}")
    print(f"\nmachine: {context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz, "
          f"{context.get('date', '')}; results in {json_path}")
    if DEBUG_LIBRARY_SEEN[0] or context.get("library_build_type") == "debug":
        print("(Google Benchmark warns that its library is a debug build: Debian's libbenchmark is. It only starts\n"
              " and stops the timers and reports; what is timed, pasha and every peer, is compiled with -O3, and\n"
              " the times are real time around each iteration, so the figures are not affected.)")
    print()
    # The worker count the peers ran with on the tuning workloads (the fork-scaling part runs many more).
    workers = max((w for (workload, n), times in results.items() if workload in TUNING_WORKLOADS
                   for (impl, w) in times if impl in PEERS), default=2)
    print_tuning_table(results)
    print_payoff(results)
    print_tracked_ratios(tracked_ratios(results, workers))
    print_fork_scaling(results)
    plot(results, os.path.join(args.out_dir, "map_bench.png"))


if __name__ == "__main__":
    main()
