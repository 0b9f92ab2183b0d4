#!/usr/bin/python3
"""Tuning table and plot for this machine, from map_bench.

    python3 tools/tune.py                      # runs map_bench through tools/bazel, then reports
    python3 tools/tune.py --json results.json  # reports on an earlier run (map_bench's JSON output)
    python3 tools/tune.py --filter 'triple'    # only some benchmarks (a Google Benchmark regex)

Prints, for each workload and size, the best pasha context and worker count with its speed-up over the
serial context, next to the best hand-written peer and the best copy-based IPC baseline; then the ratios
the project tracks. Writes a PNG plot of throughput against size (default: map_bench.png).
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
NAME = re.compile(r"^BM_(?P<impl>[a-z_]+)/(?P<workload>[a-z_]+)/n:(?P<n>\d+)/workers:(?P<workers>\d+)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_map_bench(json_path, benchmark_filter):
    """Runs map_bench through tools/bazel, showing progress, and leaves its JSON at json_path."""
    bazel = os.path.join(REPO, "tools", "bazel")
    subprocess.run([bazel, "build", "//benchmarks:map_bench"], cwd=REPO, check=True)
    binary = os.path.join(REPO, ".bazel", "bin", "benchmarks", "map_bench")
    args = [binary, "--benchmark_out=" + json_path, "--benchmark_out_format=json"]
    if benchmark_filter:
        args.append("--benchmark_filter=" + benchmark_filter)
    listed = subprocess.run(args + ["--benchmark_list_tests"], capture_output=True, text=True, check=True)
    total = len([line for line in listed.stdout.splitlines() if line.strip()])
    done = 0
    with subprocess.Popen(args + ["--benchmark_color=false"], stdout=subprocess.PIPE, text=True) as bench:
        for line in bench.stdout:
            if line.startswith("BM_"):
                done += 1
                sys.stderr.write(f"[{done}/{total}] {line}")
            else:
                sys.stderr.write(line)
    if bench.returncode != 0:
        sys.exit(f"map_bench failed with exit code {bench.returncode}")


def load(json_path):
    """{(workload, n): {(impl, workers): seconds per map}} from map_bench's JSON."""
    with open(json_path) as f:
        data = json.load(f)
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    results = defaultdict(dict)
    for bench in data["benchmarks"]:
        if bench.get("error_occurred") or bench.get("run_type") == "aggregate":
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


def print_table(results):
    print(f"{'workload':<9} {'n':>11}  {'best pasha':<14} {'items/s':>9} {'vs serial':>9}  "
          f"{'best peer':<14} {'best IPC':<16} {'zero-copy vs IPC':>16}")
    for (workload, n) in sorted(k for k in results if k[0] in ("triple", "compute", "rows")):
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
              f"{speedup:>9}  {peer_text:<14} {ipc_text:<16} {zero_copy:>16}")
    print("\n(best peer: name/workers and pasha's time as a fraction of the peer's; lower is better)")


def ratio(results, workload, n, a, b):
    times = results.get((workload, n), {})
    if a in times and b in times:
        return times[a] / times[b]
    return None


def print_tracked_ratios(results, workers):
    """The ratios the issues set targets for (time ratios; lower is better for pasha)."""
    print("\nTracked ratios (time of the first over the second; measured in this one run):")
    rows = []
    for workload, n in sorted(k for k in results if k[0] == "triple"):
        if n >= 1_000_000:
            times = results[(workload, n)]
            ipc = best(times, IPC)
            proc = best(times, ("processes",))
            if ipc and proc:
                rows.append((f"processes vs best IPC ({ipc[1]}), triple n={n}", proc[0] / ipc[0], "<= 0.5"))
    for n in sorted(n for (w, n) in results if w == "triple"):
        r = ratio(results, "triple", n, ("processes", workers), ("fork_loop", workers))
        if r is not None and n >= 10_000_000:
            rows.append((f"processes vs fork_loop, triple n={n}", r, "<= 0.6"))
        r = ratio(results, "triple", n, ("threads", workers), ("openmp", workers))
        if r is not None and n >= 10_000_000:
            rows.append((f"threads vs openmp, triple n={n}", r, "<= 1.05"))
    empty_threads = find(results, "empty", "threads", workers)
    empty_omp = find(results, "empty", "openmp", workers)
    if empty_threads and empty_omp:
        rows.append(("threads map of 1e3 elements vs empty OpenMP region", empty_threads / empty_omp, "<= 2"))
    empty_proc = find(results, "empty", "processes", workers)
    empty_fork = find(results, "empty", "fork_loop", workers)
    if empty_proc and empty_fork:
        rows.append(("processes empty map vs raw fork+waitpid", empty_proc / empty_fork, "(reported)"))
    for kind in ("threads", "processes"):
        static = find(results, "imbalanced_static", kind, workers)
        dynamic = find(results, "imbalanced_dynamic", kind, workers)
        if static and dynamic:
            rows.append((f"{kind}: dynamic vs static on the imbalanced kernel", dynamic / static, "<= 0.67"))
    for label, value, target in rows:
        print(f"  {label:<58} {value:6.3f}   target {target}")


def find(results, workload, impl, workers):
    for (w, n), times in results.items():
        if w == workload and (impl, workers) in times:
            return times[(impl, workers)]
    return None


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"\nmatplotlib is missing (apt-get install python3-matplotlib): no plot written", file=sys.stderr)
        return
    workloads = [w for w in ("triple", "compute", "rows") if any(k[0] == w for k in results)]
    fig, axes = plt.subplots(1, len(workloads), figsize=(6 * len(workloads), 5), squeeze=False)
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
        ax.set_title(f"{workload}: throughput against size")
        ax.set_xlabel("elements")
        ax.set_ylabel("items per second")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nplot written to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="read this map_bench JSON instead of running map_bench")
    parser.add_argument("--filter", help="run only the benchmarks matching this regex")
    parser.add_argument("--out", default="map_bench.json", help="where a new run's JSON goes")
    parser.add_argument("--plot", default="map_bench.png", help="where the PNG plot goes")
    args = parser.parse_args()

    json_path = args.json
    if not json_path:
        json_path = os.path.abspath(args.out)
        run_map_bench(json_path, args.filter)
    context, results = load(json_path)
    if not results:
        sys.exit(f"no map_bench results in {json_path}")
    print(f"\nmachine: {context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz, "
          f"{context.get('date', '')}\n")
    workers = max(w for times in results.values() for (impl, w) in times if impl in PEERS) if any(
        impl in PEERS for times in results.values() for (impl, w) in times) else 2
    print_table(results)
    print_tracked_ratios(results, workers)
    plot(results, args.plot)


if __name__ == "__main__":
    main()
