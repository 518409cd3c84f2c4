"""Global optimisation check: basin hopping finds the Lennard-Jones LJ13 and LJ38 global minima.

From random starts (one per seed), ``clusterforce.workflows.search.basin_hopping`` with the Lennard-Jones
calculator (epsilon = sigma = 1, no cutoff), kT = 0.8 epsilon, step 0.36 sigma adapted to 50 %
acceptance, stops when it reaches the Cambridge Cluster Database energy. Reported per size: how
many seeds succeed within the step budget, the median first-hit step, CPU seconds, and the
number of distinct minima seen. Compared in the same run with ASE's BasinHopping (same
temperature and step, ASE's BFGS) on LJ13, the alternative a user has.

    python benchmarks/bench_lj_search.py                  # LJ13 x 10 seeds, LJ38 x 6 seeds, 6000 steps
    python benchmarks/bench_lj_search.py --sizes 13 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from clusterforce.references import LennardJones
from clusterforce.workflows.search import LJ_NEAREST, basin_hopping, random_cluster

#: Global minima, epsilon (Cambridge Cluster Database).
GLOBAL_MINIMA = {13: -44.326801, 38: -173.928427}
ROOT = Path(__file__).resolve().parent


def ours(n: int, seed: int, steps: int) -> dict:
    cpu = time.process_time()
    store = basin_hopping(
        random_cluster(n, "Ar", nearest=LJ_NEAREST, seed=seed),
        LennardJones(),
        steps=steps,
        kt=0.8,
        step_size=0.36,
        seed=seed,
        target=GLOBAL_MINIMA[n],
        progress=False,
    )
    hit = store.lowest.energy <= GLOBAL_MINIMA[n] + 1e-5
    return {
        "seed": seed,
        "found": hit,
        "lowest": store.lowest.energy,
        "step": store.lowest.step if hit else None,
        "cpu_s": time.process_time() - cpu,
        "n_minima": len(store.minima),
    }


def ase_basin_hopping(n: int, seed: int, steps: int) -> dict:
    from ase.optimize import BFGS
    from ase.optimize.basin import BasinHopping

    atoms = random_cluster(n, "Ar", nearest=LJ_NEAREST, seed=seed)
    atoms.calc = LennardJones()
    np.random.seed(seed)  # ASE's BasinHopping draws from numpy's global generator
    cpu = time.process_time()

    def quiet_bfgs(a, **kwargs):
        return BFGS(a, **{**kwargs, "logfile": None})

    bh = BasinHopping(atoms, temperature=0.8, dr=0.36, optimizer=quiet_bfgs, fmax=1e-3, logfile=None, trajectory=None)
    first = None
    for step in range(1, steps + 1):
        bh.run(1)
        if bh.get_minimum()[0] <= GLOBAL_MINIMA[n] + 1e-5:
            first = step
            break
    return {
        "seed": seed,
        "found": first is not None,
        "lowest": float(bh.get_minimum()[0]),
        "step": first,
        "cpu_s": time.process_time() - cpu,
    }


def summarise(runs: list[dict]) -> dict:
    steps = [r["step"] for r in runs if r["found"]]
    return {
        "success": f"{len(steps)}/{len(runs)}",
        "median_step": float(np.median(steps)) if steps else None,
        "cpu_s_total": round(sum(r["cpu_s"] for r in runs), 1),
        "best": min(r["lowest"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[13, 38], choices=sorted(GLOBAL_MINIMA))
    parser.add_argument("--seeds", type=int, default=None, help="seeds per size (default 10 for LJ13, 6 for LJ38)")
    parser.add_argument("--steps", type=int, default=6000, help="step budget per seed")
    parser.add_argument("-o", "--output", default=str(ROOT / "results" / "lj_search.json"))
    args = parser.parse_args()
    result = {}
    print(f"{'run':<22}{'success':>9}{'median step':>13}{'CPU s':>9}{'best':>13}")
    for n in args.sizes:
        seeds = range(args.seeds or (10 if n == 13 else 6))
        rows = {"clusterforce": [ours(n, s, args.steps) for s in seeds]}
        if n == 13:
            rows["ase BasinHopping"] = [ase_basin_hopping(n, s, min(args.steps, 500)) for s in seeds]
        for name, runs in rows.items():
            summary = summarise(runs)
            result[f"LJ{n} {name}"] = {"summary": summary, "runs": runs, "global_minimum": GLOBAL_MINIMA[n]}
            print(
                f"{f'LJ{n} {name}':<22}{summary['success']:>9}{str(summary['median_step']):>13}"
                f"{summary['cpu_s_total']:>9}{summary['best']:>13.6f}"
            )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
