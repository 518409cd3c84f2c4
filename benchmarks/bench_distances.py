"""Distance-matrix throughput: clusterforce (gram, exact) vs scipy cdist and sklearn.

All methods run on the same random float64 data in the same process, taking turns (best
of --repeat rounds). Throughput is reported
as GFLOP/s counting 2*N*K*F for every method (the multiply-adds of the gram product), and as
a fraction of what numpy's matmul ``X @ Y.T`` (same shapes, same thread count) reaches here:
that BLAS product is the practical ceiling for the gram formulation on this machine.

    python benchmarks/bench_distances.py [--threads 2] [--repeat 3] [--quick]

Prints a markdown table and writes benchmarks/results/distances.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import clusterforce
import numpy as np
import scipy
import sklearn
from clusterforce import _kernels
from clusterforce.descriptors.distances import euclidean_distances
from scipy.spatial.distance import cdist
from sklearn.metrics import pairwise_distances
from threadpoolctl import threadpool_info, threadpool_limits

RESULTS = Path(__file__).resolve().parent / "results" / "distances.json"
# A method whose first call takes longer than this is not repeated (scipy's cdist at the
# largest sizes).
SLOW_CALL_S = 5.0


def best_times(methods: dict, repeat: int) -> tuple[dict, dict]:
    """Best wall time per method; the methods take turns, so load bursts hit all alike."""
    best = {name: float("inf") for name in methods}
    outputs = {}
    for round_ in range(repeat):
        for name, fn in methods.items():
            if round_ > 0 and best[name] > SLOW_CALL_S:
                continue
            start = time.perf_counter()
            outputs[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, outputs


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_case(n: int, f: int, repeat: int) -> list[dict]:
    rng = np.random.default_rng(n + f)
    x, y = rng.normal(size=(n, f)), rng.normal(size=(n, f))
    flop = 2.0 * n * n * f
    methods = {
        "numpy matmul X @ Y.T": lambda: x @ y.T,
        "clusterforce gram": lambda: euclidean_distances(x, y),
        "clusterforce exact": lambda: euclidean_distances(x, y, exact=True),
        "sklearn pairwise_distances": lambda: pairwise_distances(x, y, metric="euclidean"),
        "scipy cdist": lambda: cdist(x, y, "euclidean"),
    }
    times, outputs = best_times(methods, repeat)
    reference = outputs.pop("scipy cdist")
    scale = np.sqrt(2.0 * f)  # typical norm of these rows
    matmul = times["numpy matmul X @ Y.T"]
    rows = []
    for name, seconds in times.items():
        error = None
        if name in outputs and name != "numpy matmul X @ Y.T":
            error = float(np.abs(outputs[name] - reference).max() / scale)
        rows.append(
            {
                "N": n,
                "K": n,
                "F": f,
                "method": name,
                "seconds": seconds,
                "gflops": flop / seconds / 1e9,
                "fraction_of_matmul": matmul / seconds,
                "speedup_vs_cdist": times["scipy cdist"] / seconds,
                "max_error_vs_cdist_over_scale": error if name != "scipy cdist" else 0.0,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| N=K | F | method | time (s) | GFLOP/s | fraction of matmul | vs cdist | max err / scale |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        err = "" if r["max_error_vs_cdist_over_scale"] is None else f"{r['max_error_vs_cdist_over_scale']:.1e}"
        lines.append(
            f"| {r['N']} | {r['F']} | {r['method']} | {r['seconds']:.3f} | {r['gflops']:.1f} | "
            f"{r['fraction_of_matmul']:.2f} | {r['speedup_vs_cdist']:.1f}x | {err} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for BLAS and OpenMP alike (default: all cores)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per method; the best is kept")
    parser.add_argument("--quick", action="store_true", help="small sizes only (N=K=1000, F=252)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON result file")
    args = parser.parse_args(argv)

    sizes = [1000] if args.quick else [1000, 5000]
    features = [252] if args.quick else [252, 2030]
    load_before = os.getloadavg()
    rows = []
    with threadpool_limits(limits=args.threads):
        for n in sizes:
            for f in features:
                rows.extend(run_case(n, f, args.repeat))
                print(f"done N=K={n} F={f}", flush=True)
    load_after = os.getloadavg()

    print()
    print(markdown(rows))
    print()
    print(
        f"threads={args.threads}, repeat={args.repeat}, kernel ISA={_kernels.resolve_isa()}, CPU: {cpu_model()} "
        f"({os.cpu_count()} logical cores); 1-min load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after (a shared machine: absolute numbers vary, ratios less so)"
    )
    blas = [
        {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    record = {
        "benchmark": "distances",
        "flop_count": "2*N*K*F for every method",
        "threads": args.threads,
        "repeat": args.repeat,
        "quick": args.quick,
        "kernel_isa": _kernels.resolve_isa(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "versions": {
            "clusterforce": clusterforce.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "sklearn": sklearn.__version__,
        },
        "blas": blas,
        "build": clusterforce.build_info(),
        "results": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
