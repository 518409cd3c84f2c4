"""Isomers of a Na cluster size the model never saw: basin hopping vs DART-style screening of MD frames.

With the gap model trained on the shipped ``na`` data (sizes 20, 25, 31, 41, 55), for Na46:

1. basin hopping from a random start (``clusterforce.workflows.search.basin_hopping``, kT 0.1 eV, 0.4 A steps);
2. Langevin MD at 350 K from the basin-hopping lowest minimum, a frame every 20 steps;
3. screening: frames binned by predicted energy, the lowest frame of each bin relaxed, distinct minima
   counted (energy window 1 meV + RMSD 0.05 A after alignment);

reporting the number of distinct minima from each, and where the screening's lowest minimum lies
relative to basin hopping's. Writes ``benchmarks/results/na_isomers.json``.

    python benchmarks/na_isomers.py MODEL.cfm [--size 46] [--hops 60] [--md-steps 2000] [--bins 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from clusterforce import Calculator
from clusterforce.workflows.isomers import MinimaStore, relax
from clusterforce.workflows.search import basin_hopping, random_cluster, screen

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--size", type=int, default=46)
    parser.add_argument("--hops", type=int, default=60)
    parser.add_argument("--md-steps", type=int, default=2000)
    parser.add_argument("--bins", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    calc = Calculator(args.model)
    out: dict = {"size": args.size, "model": args.model}

    cpu = time.process_time()
    start = random_cluster(args.size, "Na", seed=args.seed)
    bh = basin_hopping(start, calc, steps=args.hops, kt=0.1, step_size=0.4, seed=args.seed, fmax=0.01, progress=False)
    out["basin_hopping"] = {"steps": args.hops, "distinct_minima": len(bh.minima), "lowest_eV": bh.lowest.energy,
                            "cpu_s": time.process_time() - cpu}  # fmt: skip

    cpu = time.process_time()
    atoms = bh.lowest.atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(args.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=350.0, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=350.0, friction=0.01 / units.fs, rng=rng)
    frames = []
    for _ in range(args.md_steps // 20):
        dyn.run(20)
        frames.append(atoms.copy())

    def energy(a):
        probe = a.copy()
        probe.calc = calc
        return probe.get_potential_energy()

    reps = screen(frames, energy, bins=args.bins)
    store = MinimaStore()
    for rank, i in enumerate(reps):
        minimum, e, _ = relax(frames[i], calc, fmax=0.01)
        store.add(minimum, e, "screen", rank)
    out["screening"] = {"md_frames": len(frames), "representatives": len(reps), "distinct_minima": len(store.minima),
                        "lowest_eV": store.lowest.energy, "lowest_minus_bh_eV": store.lowest.energy - bh.lowest.energy,
                        "cpu_s": time.process_time() - cpu}  # fmt: skip
    print(json.dumps(out, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "na_isomers.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
