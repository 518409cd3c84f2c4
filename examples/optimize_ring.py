"""Optimise a gold-thiolate ring with a trained dml force model from Python (ASE workflow).

1. Train a dml model (EMLM norms + OAMLM directions) on the shipped ``rings`` data, or load
   the model file given with ``--model``.
2. Build a fresh [Au(SCH3)]n ring (the paper's start: S on a regular polygon, 1.0 Angstrom up
   and down in turns) and optimise it with the force-only BFGS: maximum step, Hessian reset
   every N steps, trajectory and log file.
3. With tblite installed, compute GFN1-xTB single-point energies along the ML trajectory and
   plot them against the step (PNG), as in FIG. 6 of the oamlm paper.

Usage: python examples/optimize_ring.py [--n 5] [--model rings.cfm] [--out ring_opt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.io import read
from clusterforce import Calculator
from clusterforce.data import datasets
from clusterforce.kinds.dml.model import DMLModel
from clusterforce.workflows.datagen import gold_thiolate_ring
from clusterforce.workflows.optimize import ForceOnlyOptimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="ring size (Au atoms)")
    parser.add_argument("--model", type=Path, help="trained dml model (default: train one on dataset:rings)")
    parser.add_argument("--maxstep", type=float, default=0.05, help="Angstrom")
    parser.add_argument("--reset-every", type=int, default=36, help="Hessian reset period (steps)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("ring_opt"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    model_path = args.model or args.out / "rings.cfm"
    if not model_path.exists():
        DMLModel(random_state=0).fit(datasets.load("rings")).save(model_path)

    atoms = gold_thiolate_ring(args.n)
    atoms.center(vacuum=8.0)
    atoms.calc = Calculator(model_path)
    print("ML forces (eV/Angstrom) at the start, largest:", np.linalg.norm(atoms.get_forces(), axis=1).max().round(3))
    print("per-atom OAMLM uncertainty, largest:", atoms.calc.results["uncertainty"].max().round(3))

    traj = args.out / f"ring{args.n}.traj"
    result = ForceOnlyOptimizer(
        atoms, maxstep=args.maxstep, reset_every=args.reset_every, trajectory=traj, logfile=args.out / f"ring{args.n}.log"
    ).run(fmax=0.1, steps=args.steps)
    print(f"{result.nsteps} steps, converged: {result.converged}, Hessian resets before steps {result.resets}")

    try:
        from clusterforce.references import make_reference, single_point_energies

        reference = make_reference("gfn1-xtb", atoms)
    except ImportError as exc:
        print(f"no GFN1-xTB energies: {exc}")
        return
    path = read(traj, ":")
    energies = single_point_energies(path, reference, f"ring{args.n}")
    print(f"GFN1-xTB energy change along the ML path: {energies[-1] - energies[0]:+.3f} eV "
          f"(lowest {np.nanmin(energies) - energies[0]:+.3f} eV)")  # fmt: skip

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(energies - energies[0])
    ax.set_xlabel("ML BFGS step")
    ax.set_ylabel("GFN1-xTB E − E(start) / eV")
    ax.set_title(f"[Au(SCH3)]{args.n}")
    fig.tight_layout()
    fig.savefig(args.out / f"ring{args.n}_energy.png", dpi=120)
    print("wrote", args.out / f"ring{args.n}_energy.png")


if __name__ == "__main__":
    main()
