"""The OAMLM paper's ring experiment (section III D 1, FIG. 6) with GFN1-xTB as the reference.

For gold-thiolate rings [Au(SCH3)]n, n = 4, 5, 6 and the unseen n = 7, built like the paper
(S on the corners of a regular polygon, displaced 1.0 Angstrom up and down in turns):

1. optimise with a ``dml`` model trained on the shipped ``rings`` data (force-only BFGS,
   maximum step 0.1 Angstrom, 200 steps, stop at fmax 0.1 eV/Angstrom, as in the paper);
2. compute GFN1-xTB single-point energies along the ML trajectory;
3. optimise the same start with GFN1-xTB forces (ASE BFGS, maximum step 0.2 Angstrom,
   fmax 0.05 eV/Angstrom, the paper's DFT settings);
4. compare: reference energy decrease along the ML path, final ML energy minus the reference
   minimum, heavy-atom RMSD (Au, S, C after optimal superposition) between the two finals.

Each ring's result is written to ``WORKDIR/ringN.json`` as soon as it is done and reused on
the next run (delete it to redo that ring), so an interrupted run continues where it stopped.
``--train-data`` picks the training set: the shipped ``rings`` (default) or ``au38`` as in the
paper (its ring model never saw a ring), or both. Writes
``benchmarks/results/ring_optimization[-TAG].{json,md,png}``. Needs tblite
(``pip install "clusterforce[xtb]"``); reads no files outside the package.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.optimize import BFGS
from clusterforce import Calculator
from clusterforce.data import datasets
from clusterforce.descriptors.neighbors import shortest_pairs_of
from clusterforce.kinds.dml.align import kabsch
from clusterforce.kinds.dml.model import DMLModel
from clusterforce.references import LadderCalculator, ScfFailure, make_reference, resolve, single_point_energies
from clusterforce.workflows.datagen import gold_thiolate_ring
from clusterforce.workflows.optimize import ForceOnlyOptimizer

RESULTS = Path(__file__).resolve().parent / "results"


def heavy_atom_rmsd(a: Atoms, b: Atoms) -> float:
    """RMSD (Angstrom) of the non-hydrogen atoms after optimal rotation and translation."""
    heavy = a.numbers != 1
    p = a.positions[heavy] - a.positions[heavy].mean(axis=0)
    q = b.positions[heavy] - b.positions[heavy].mean(axis=0)
    rotation = kabsch(p, q)  # maps q onto p
    return float(np.sqrt(((p - q @ rotation.T) ** 2).sum(axis=1).mean()))


def reference_calculator(atoms: Atoms) -> LadderCalculator:
    """GFN1-xTB with the data set's settings (300 K electronic temperature), SCF failures retried."""
    return resolve("gfn1-xtb", atoms)


def train_model(path: Path, data: list[str], quiet: bool) -> None:
    """Fit the dml model on the shipped data sets ``data`` (paper K) unless ``path`` exists."""
    if path.exists():
        return
    frames = [frame for name in data for frame in datasets.load(name)]
    DMLModel(random_state=0, progress=not quiet).fit(frames).save(path)


def run_ring(n: int, model_path: Path, args: argparse.Namespace, workdir: Path) -> dict:
    start = gold_thiolate_ring(n)
    start.center(vacuum=8.0)

    ml = start.copy()
    ml.calc = Calculator(model_path)
    t0 = time.perf_counter()
    ml_result = ForceOnlyOptimizer(ml, maxstep=args.ml_maxstep, reset_every=args.reset_every, trajectory=workdir / f"ring{n}_ml.traj").run(
        fmax=args.ml_fmax, steps=args.steps
    )
    ml_seconds = time.perf_counter() - t0

    from ase.io import read

    ml_path = read(workdir / f"ring{n}_ml.traj", ":")
    ml_steps = list(range(0, len(ml_path), args.energy_every))
    if ml_steps[-1] != len(ml_path) - 1:
        ml_steps.append(len(ml_path) - 1)
    ml_energies = single_point_energies([ml_path[k] for k in ml_steps], make_reference("gfn1-xtb", start), f"ring{n} ML path").tolist()

    ref = start.copy()
    ref.calc = reference_calculator(ref)
    ref_energies: list[float] = []
    opt = BFGS(ref, maxstep=args.ref_maxstep, logfile=None)
    opt.attach(lambda: ref_energies.append(float(ref.get_potential_energy())))
    t0 = time.perf_counter()
    try:
        ref_converged = opt.run(fmax=args.ref_fmax, steps=args.ref_steps)
    except ScfFailure as exc:  # the reference path ends where GFN1-xTB cannot converge
        logging.warning("%s", exc)
        ref_converged = False
    ref_seconds = time.perf_counter() - t0

    e0 = ml_energies[0]
    return {
        "n": n,
        "n_atoms": len(start),
        "in_training_data": args.model is None and "rings" in args.train_data and n in (4, 5, 6),
        "ml_steps": ml_result.nsteps,
        "ml_converged": ml_result.converged,
        "ml_final_fmax": ml_result.fmax[-1],
        "ml_max_fmax": max(ml_result.fmax),
        "ml_seconds": ml_seconds,
        "ref_steps": opt.nsteps,
        "ref_converged": bool(ref_converged),
        "ref_seconds": ref_seconds,
        "e_start": e0,
        "ml_energy_decrease": e0 - ml_energies[-1],
        "ml_lowest_decrease": e0 - np.nanmin(ml_energies),
        "ml_scf_failures": int(np.isnan(ml_energies).sum()),
        "ref_energy_decrease": e0 - ref_energies[-1],
        "final_difference": ml_energies[-1] - ref_energies[-1],
        "heavy_atom_rmsd": heavy_atom_rmsd(ml, ref),
        "ml_energies": ml_energies,
        "ml_energy_steps": ml_steps,
        "ref_energies": ref_energies,
    }


def first_extrapolating_step(model: DMLModel, trajectory: Path) -> int | None:
    """First ML step whose structure has a pair closer than any in the training data."""
    from ase.io import read

    for step, frame in enumerate(read(trajectory, ":")):
        if model.extrapolating(frame).any():
            return step
    return None


def lowest_inside_training(row: dict) -> float:
    """Lowest GFN1-xTB energy change (eV) along the ML path before it leaves the training
    distances (after that, collapsed geometries give meaningless tight-binding energies)."""
    steps = np.array(row.get("ml_energy_steps", range(len(row["ml_energies"]))))
    energies = np.array(row["ml_energies"]) - row["e_start"]
    first = row.get("first_extrapolating_step")
    inside = energies[steps < first] if first is not None else energies
    return float(np.nanmin(inside))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 3.4), squeeze=False)
    for ax, row in zip(axes[0], rows):
        e0 = row["e_start"]
        ax.plot(np.array(row["ref_energies"]) - e0, label="GFN1-xTB BFGS")
        ml = np.array(row["ml_energies"]) - e0
        ax.plot(row.get("ml_energy_steps", range(len(ml))), ml, label="ML BFGS (GFN1-xTB energy)")
        first = row.get("first_extrapolating_step")
        if first is not None:
            ax.axvline(first, color="0.5", ls=":", lw=1, label="ML path leaves training distances")
        # Diverged paths reach hundreds of eV; keep the physically interesting range visible.
        ax.set_ylim(min(lowest_inside_training(row), min(np.array(row["ref_energies"]) - e0)) - 0.3, 2.0)
        ax.set_title(f"[Au(SCH3)]{row['n']}" + ("" if row["in_training_data"] else " (unseen)"))
        ax.set_xlabel("optimisation step")
        ax.set_ylabel("E − E(start) / eV")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(rows: list[dict]) -> str:
    lines = [
        "| ring | atoms | ML steps | ΔE ML path final (lowest) eV | ΔE GFN1 BFGS eV (steps) | E_ML − E_ref final eV "
        "| heavy-atom RMSD Å | ML fmax end (max) eV/Å | first step outside training distances "
        "| ΔE lowest before that step eV |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"n={r['n']}" + ("" if r["in_training_data"] else " (unseen)")
        lines.append(
            f"| {name} | {r['n_atoms']} | {r['ml_steps']} | {-r['ml_energy_decrease']:+.3f} ({-r['ml_lowest_decrease']:+.3f}) | "
            f"{-r['ref_energy_decrease']:+.3f} ({r['ref_steps']}) | {r['final_difference']:+.3f} | {r['heavy_atom_rmsd']:.3f} | "
            f"{r['ml_final_fmax']:.2f} ({r['ml_max_fmax']:.2f}) | {r.get('first_extrapolating_step')} | "
            f"{lowest_inside_training(r):+.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 5, 6, 7])
    parser.add_argument("--steps", type=int, default=200, help="ML BFGS steps (paper: 200)")
    parser.add_argument("--ml-maxstep", type=float, default=0.1)
    parser.add_argument("--ml-fmax", type=float, default=0.1)
    parser.add_argument("--reset-every", type=int, default=None, help="reset the ML BFGS Hessian every N steps")
    parser.add_argument("--train-data", nargs="+", default=["rings"], help="shipped data sets to train on")
    parser.add_argument("--model", type=Path, help="use this trained dml model instead (e.g. the au_thiolate 'both' model)")
    parser.add_argument("--tag", default="", help="suffix of the result files (e.g. au38)")
    parser.add_argument("--energy-every", type=int, default=1, help="GFN1-xTB single point every N ML steps")
    parser.add_argument("--ref-maxstep", type=float, default=0.2)
    parser.add_argument("--ref-fmax", type=float, default=0.05)
    parser.add_argument("--ref-steps", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=RESULTS / "ring_optimization")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO)

    stem = "ring_optimization" + (f"-{args.tag}" if args.tag else "")
    workdir = args.workdir / (args.tag or "rings")
    workdir.mkdir(parents=True, exist_ok=True)
    if args.model:
        model_path = args.model
    else:
        model_path = workdir / ("-".join(args.train_data) + ".cfm")
        train_model(model_path, args.train_data, args.quiet)
    rows = []
    model = DMLModel.load(model_path)
    if "shortest_pairs" not in model.training_:  # saved before models recorded them
        model.training_["shortest_pairs"] = shortest_pairs_of(
            [frame for name in args.train_data for frame in datasets.load(name)], model.r_cut
        )
    for n in args.sizes:
        done = workdir / f"ring{n}.json"
        if not done.exists():
            row = run_ring(n, model_path, args, workdir)
            row["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            done.write_text(json.dumps(row, indent=1))
        row = json.loads(done.read_text())
        if "first_extrapolating_step" not in row:
            row["first_extrapolating_step"] = first_extrapolating_step(model, workdir / f"ring{n}_ml.traj")
            done.write_text(json.dumps(row, indent=1))
        rows.append(row)

    (RESULTS / f"{stem}.json").write_text(json.dumps(rows, indent=1))
    table = markdown(rows)
    (RESULTS / f"{stem}.md").write_text(table + "\n")
    plot(rows, RESULTS / f"{stem}.png")
    print(table)


if __name__ == "__main__":
    main()
