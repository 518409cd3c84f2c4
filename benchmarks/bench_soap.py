"""SOAP benchmark: clusterforce vs dscribe, values and values+gradients, time and peak memory.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/bench_soap.py            # everything
    python benchmarks/bench_soap.py --skip-grid                   # timings only

Every (implementation, structure, parameters, mode) runs in a fresh subprocess so that its
peak resident memory (VmHWM after resetting it, above the RSS before the call) is its own;
the times are the best of ``--repeat`` or more calls in that subprocess (dscribe's large
derivative cases: 2). The speed-up is the ratio of process CPU times (user + system, which
includes page faults): the machines this runs on are shared, and wall time under load
jitters by 2-3x; the wall-time ratio is reported next to it. Both implementations run on
one thread (dscribe has no threading inside one structure). The accuracy grid compares values
with dscribe over r_cut {3.5, 4, 5} x n_max {2, 4, 7} x l_max {0, 3, 4, 6} x sigma
{0.25, 0.5, 1.0} on Na55 and Au38(SCH3)24, and gradients at the timed settings. The last
column times our values plus ``contract_gradients`` (what a force evaluation needs).
Writes a markdown table to stdout and JSON to benchmarks/results/soap.json. Structures come
from ../shared/structures (or $CLUSTERFORCE_SHARED/structures).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# The shared data sits next to the repository; CLUSTERFORCE_SHARED overrides that (worktrees).
SHARED = Path(os.environ.get("CLUSTERFORCE_SHARED", ROOT / ".." / "shared"))
RESULTS = ROOT / "benchmarks" / "results" / "soap.json"

# Paper settings: the oamlm paper's SOAP and the GAP-sodium paper's Table 1 (r_cut 12.9 A,
# n_max ("eta") 12, l_max 6, atom sigma 0.6 A).
PARAMS = {
    "paper": dict(r_cut=4.0, n_max=7, l_max=4, sigma=0.25),
    "gap-na": dict(r_cut=12.9, n_max=12, l_max=6, sigma=0.6),
}
CASES = [
    ("Na55", "paper"),
    ("Na147", "paper"),
    ("Au38(SCH3)24", "paper"),
    ("Na55", "gap-na"),
    ("Na147", "gap-na"),
]


def load_structure(name: str):
    from ase.cluster import Icosahedron
    from ase.io import read

    if name == "Na147":
        # Nearest neighbours at 3.6 A, as in sodium clusters (ASE's default is compressed).
        return Icosahedron("Na", 4, latticeconstant=3.6 * np.sqrt(2))
    if name == "Na55":
        path = SHARED / "structures" / "qcd_low_energy_Na.extxyz"
        if not path.exists():
            raise SystemExit(f"bench_soap: {path} is missing (the shared data directory is not next to the repo)")
        atoms = [a for a in read(path, ":") if len(a) == 55][0]
    elif name == "Au38(SCH3)24":
        path = SHARED / "structures" / "au38_sch3_24_Q.xyz"
        if not path.exists():
            raise SystemExit(f"bench_soap: {path} is missing (the shared data directory is not next to the repo)")
        atoms = read(path)
    else:
        raise SystemExit(f"bench_soap: unknown structure {name}")
    atoms.pbc = False
    atoms.cell = None
    return atoms


def species_of(atoms) -> list[str]:
    return sorted(set(atoms.get_chemical_symbols()))


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{key} missing from /proc/self/status")


def reset_peak() -> float:
    """Reset the peak-RSS mark (Linux clear_refs) and return the current RSS in MB."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_mb("VmRSS")


def peak_mb() -> float:
    return _status_mb("VmHWM")


def worker(impl: str, structure: str, params: str, mode: str, repeat: int) -> dict:
    """One measurement in this (fresh) process."""
    atoms = load_structure(structure)
    p = dict(PARAMS[params], species=species_of(atoms))
    if impl == "dscribe":
        from dscribe.descriptors import SOAP as DscribeSOAP

        soap = DscribeSOAP(**p)
        if mode == "values":

            def call():
                return soap.create(atoms)
        else:

            def call():
                return soap.derivatives(atoms, attach=True, method="analytical")
    else:
        from clusterforce.descriptors.soap import SOAP

        soap = SOAP(**p)
        if mode == "values":

            def call():
                return soap.compute(atoms)
        elif mode == "contracted":
            weights = np.random.default_rng(0).normal(size=(len(atoms), soap.n_features))

            def call():
                return soap.compute(atoms), soap.contract_gradients(atoms, weights)
        else:

            def call():
                return soap.compute_with_gradients(atoms)

    best_wall, best_cpu, peak, spent, calls = np.inf, np.inf, 0.0, 0.0, 0
    # At least `repeat` calls, more for fast ones (up to ~0.5 s or 30 calls), best kept.
    while calls < repeat or (spent < 0.5 and calls < 30):
        base = reset_peak()
        w0, c0 = time.perf_counter(), time.process_time()
        out = call()
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        del out
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
        peak = max(peak, peak_mb() - base)
        spent += wall
        calls += 1
    return {"time_s": best_wall, "cpu_s": best_cpu, "calls": calls, "peak_mb": peak}


def run_worker(impl, structure, params, mode, repeat) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, structure, params, mode, "--repeat", str(repeat)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def rel_dev(ours, ref) -> float:
    ours, ref = np.atleast_2d(ours), np.atleast_2d(ref)
    return float((np.abs(ours - ref).max(axis=1) / np.abs(ref).max(axis=1)).max())


def gradient_deviation(structure: str, params: str) -> float:
    """Max over centres of max|ours - dscribe| / max|dscribe| for the full derivative tensor."""
    from clusterforce.descriptors.soap import SOAP
    from dscribe.descriptors import SOAP as DscribeSOAP

    atoms = load_structure(structure)
    p = dict(PARAMS[params], species=species_of(atoms))
    ref_d, ref_v = DscribeSOAP(**p).derivatives(atoms, attach=True, method="analytical")
    values, grad, pc, pa = SOAP(**p).compute_with_gradients(atoms)
    worst = rel_dev(values, ref_v)
    for c in range(len(atoms)):
        rows = pc == c
        dense = np.zeros(ref_d.shape[1:])
        np.add.at(dense, pa[rows], grad[rows])
        worst = max(worst, float(np.abs(dense - ref_d[c]).max() / np.abs(ref_d[c]).max()))
    return worst


def accuracy_grid() -> dict:
    from clusterforce.descriptors.soap import SOAP
    from dscribe.descriptors import SOAP as DscribeSOAP

    out = {}
    for structure in ("Na55", "Au38(SCH3)24"):
        atoms = load_structure(structure)
        worst, worst_at = 0.0, None
        for r_cut, n_max, l_max, sigma in itertools.product([3.5, 4.0, 5.0], [2, 4, 7], [0, 3, 4, 6], [0.25, 0.5, 1.0]):
            p = dict(species=species_of(atoms), r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma)
            dev = rel_dev(SOAP(**p).compute(atoms), DscribeSOAP(**p).create(atoms))
            if dev >= worst:
                worst, worst_at = dev, dict(r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma)
        out[structure] = {"n_settings": 108, "max_rel_dev": worst, "worst_at": worst_at}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=4, metavar=("IMPL", "STRUCTURE", "PARAMS", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=5, help="calls per measurement, best time kept")
    parser.add_argument("--skip-grid", action="store_true", help="skip the 108-setting accuracy grid")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, repeat=args.repeat)))
        return 0

    for name in ("Na55", "Au38(SCH3)24"):
        load_structure(name)  # fail early, with the message, if the shared data is missing
    rows = []
    for structure, params in CASES:
        atoms = load_structure(structure)
        from clusterforce.descriptors.soap import SOAP

        n_features = SOAP(**PARAMS[params], species=species_of(atoms)).n_features
        for mode in ("values", "values+gradients"):
            row = {
                "structure": structure,
                "n_atoms": len(atoms),
                "params": params,
                **PARAMS[params],
                "n_features": n_features,
                "mode": mode,
            }
            for impl in ("dscribe", "clusterforce"):
                slow = impl == "dscribe" and mode != "values" and (params == "gap-na" or n_features > 1000)
                repeat = min(args.repeat, 2) if slow else args.repeat
                row[impl] = run_worker(impl, structure, params, mode, repeat)
            if "error" not in row["dscribe"] and "error" not in row["clusterforce"]:
                row["speedup"] = row["dscribe"]["cpu_s"] / row["clusterforce"]["cpu_s"]
                row["speedup_wall"] = row["dscribe"]["time_s"] / row["clusterforce"]["time_s"]
                row["memory_ratio"] = row["dscribe"]["peak_mb"] / max(row["clusterforce"]["peak_mb"], 1e-3)
            if mode != "values":
                # Forces of a model E = sum_c e(p_c) need only w . dp/dr: our contracted path.
                row["clusterforce_contracted"] = run_worker("clusterforce", structure, params, "contracted", args.repeat)
                row["gradient_max_rel_dev"] = gradient_deviation(structure, params)
            rows.append(row)
            print(f"# {structure} {params} {mode}: {row}", file=sys.stderr)

    grid = {} if args.skip_grid else accuracy_grid()
    from importlib.metadata import version

    result = {
        "benchmark": "soap",
        "threads": 1,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count()},
        "versions": {"clusterforce": version("clusterforce"), "dscribe": version("dscribe")},
        "timings": rows,
        "accuracy_grid": grid,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(
        "| structure | atoms | params | F | mode | dscribe CPU s | ours CPU s | speed-up (wall) | dscribe MB "
        "| ours MB | grad dev | ours values+contracted CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d, o = r["dscribe"], r["clusterforce"]
        fmt = lambda m, k, f: (f % m[k]) if k in m else m.get("error", "-")  # noqa: E731
        speedup = f"{r['speedup']:.1f}x ({r['speedup_wall']:.1f}x)" if "speedup" in r else "-"
        deviation = f"{r['gradient_max_rel_dev']:.1e}" if "gradient_max_rel_dev" in r else ""
        print(
            f"| {r['structure']} | {r['n_atoms']} | {r['params']} | {r['n_features']} | {r['mode']} "
            f"| {fmt(d, 'cpu_s', '%.4f')} | {fmt(o, 'cpu_s', '%.4f')} | {speedup} | "
            f"{fmt(d, 'peak_mb', '%.0f')} | "
            f"{fmt(o, 'peak_mb', '%.0f')} | {deviation} "
            f"| {fmt(r['clusterforce_contracted'], 'cpu_s', '%.4f') if 'clusterforce_contracted' in r else ''} |"
        )
    for structure, g in grid.items():
        print(
            f"\naccuracy grid {structure}: {g['n_settings']} settings, max relative deviation from dscribe "
            f"{g['max_rel_dev']:.2e} (at {g['worst_at']})"
        )
    print(f"\nJSON: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
