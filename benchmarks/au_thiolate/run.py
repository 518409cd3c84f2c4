"""Section III of the OAMLM paper on GFN1-xTB data made here: Au38(SCH3)24 Q/T and Au25 transfer.

Stages (each writes its results and is skipped on the next run if they exist; delete a
stage's JSON to redo it):

``classes``   Au classification (core / unit / half unit) of every shipped ``au38`` frame,
              counts against temperature (paper: 22 836 core, 15 123 unit, 41 half-unit Au
              in 1000 Q frames).
``cross``     EMLM + OAMLM per class trained on one isomer and tested on the other (Q -> T,
              T -> Q): per-class norm RMSE and |F|²-weighted angle (section III A).
``both``      trained on frames of both isomers, tested on the held-out frames of both (FIG. 3
              and FIG. 4 style plots per isomer, section III B/C).
``au25``      the ``both`` model optimises a [Au25(SCH3)18]- heating-MD snapshot (shipped
              ``au25`` data set) with the four BFGS schemes of section III D 3 (full, fixed
              core, partwise outer 24 / core 12 steps, partwise with a Hessian reset every 36
              steps; maximum step 0.05 Angstrom); GFN1-xTB single-point energies along each path
              (charge -1, as in the MD), plotted like FIG. 10.

Reference sizes (K) default to what this 2-core machine predicts in reasonable time (the paper:
2500 per isomer for the cross test, 5000 norm / 2500 direction references for the full model);
pass ``--k-norm/--k-direction`` for more. Needs the shipped ``au38`` and ``au25`` data sets
and, for ``au25``, tblite (``pip install "clusterforce[xtb]"``). Writes
``benchmarks/results/au_thiolate/`` (JSON, markdown, PNG; ``--results``); models and
trajectories go to ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms
from clusterforce import Calculator
from clusterforce.data import datasets
from clusterforce.kinds.dml.environments import SCHEME_IDS, classify, extract_environments
from clusterforce.kinds.dml.metrics import evaluate_model, markdown_table
from clusterforce.kinds.dml.model import DMLModel
from clusterforce.kinds.dml.plots import plot_angle_vs_norm, plot_norm_parity
from clusterforce.references import Reference, make_reference, single_point_energies
from clusterforce.workflows.optimize import ForceOnlyOptimizer, parse_partwise

RESULTS = Path(__file__).resolve().parents[1] / "results" / "au_thiolate"
ISOMERS = ("Q", "T")
#: The four BFGS schemes of section III D 3: (partwise schedule or None, fix the core, reset every).
SCHEMES = {
    "full": (None, False, None),
    "fixed core": (None, True, None),
    "partwise": ("outer:24,core:12", False, None),
    "partwise + reset 36": ("outer:24,core:12", False, 36),
}
#: Paper values (DFT, section III A, C and FIG. 3/4) quoted next to ours in the markdown.
PAPER = {
    "half_unit_per_frame": {"Q": 41 / 1000, "T": 57 / 1000},
    "core_per_frame": {"Q": 22.836, "T": 22.055},
    "unit_per_frame": {"Q": 15.123, "T": 15.888},
    "cross_unit_angle_deg": {"Q->T": 25.0, "T->Q": 24.0},
}


def isomer_frames() -> dict[str, list[Atoms]]:
    frames = datasets.load("au38")
    return {iso: [f for f in frames if f.info["system"] == f"Au38_{iso}"] for iso in ISOMERS}


def gold_counts(atoms: Atoms) -> dict[str, int]:
    """Core, unit and half-unit Au of one structure (the paper's 3.0 Angstrom rule)."""
    envs = extract_environments(atoms, np.flatnonzero(atoms.numbers == 79))
    unit = envs.get("Au_unit")
    half = int((unit.scheme == SCHEME_IDS["Au_half_unit"]).sum()) if unit is not None else 0
    core = len(envs["Au_core"]) if "Au_core" in envs else 0
    return {"core": core, "unit": (len(unit) if unit is not None else 0) - half, "half_unit": half}


def stage_classes(frames: dict[str, list[Atoms]], out: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result: dict = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, iso in zip(axes, ISOMERS):
        rows = [gold_counts(f) | {"T_K": float(f.info["temperature_instantaneous_K"]), "step": int(f.info["step"])} for f in frames[iso]]
        result[iso] = {
            "frames": len(rows),
            "totals": {k: int(sum(r[k] for r in rows)) for k in ("core", "unit", "half_unit")},
            "per_frame": rows,
        }
        T = np.array([r["T_K"] for r in rows])
        for key, colour in (("core", "tab:orange"), ("unit", "tab:blue"), ("half_unit", "tab:green")):
            ax.scatter(T, [r[key] for r in rows], s=8, color=colour, label=key.replace("_", " ") + " Au")
        ax.set_title(f"Au38(SCH3)24 {iso}")
        ax.set_xlabel("instantaneous temperature (K)")
    axes[0].set_ylabel("Au atoms per frame")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "classes.png", dpi=120)
    plt.close(fig)
    return result


def fit(frames: list[Atoms], path: Path, k_norm: int, k_direction: int, quiet: bool) -> DMLModel:
    if path.exists():
        return DMLModel.load(path)
    t0 = time.perf_counter()
    model = DMLModel(n_references_norm=k_norm, n_references_direction=k_direction, random_state=0, progress=not quiet)
    model.fit(frames)
    logging.info("fitted %s in %.0f s", path.name, time.perf_counter() - t0)
    model.save(path)
    return model


def evaluate(model: DMLModel, frames: list[Atoms], quiet: bool) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    metrics, arrays = evaluate_model(model, frames, progress=not quiet)
    metrics["predict_s"] = time.perf_counter() - t0
    return metrics, arrays


def stage_cross(frames: dict[str, list[Atoms]], args: argparse.Namespace) -> dict:
    result = {}
    for train, test in (("Q", "T"), ("T", "Q")):
        model = fit(frames[train], args.workdir / f"{train}.cfm", args.k_norm, args.k_direction, args.quiet)
        metrics, _ = evaluate(model, frames[test][:: args.test_stride], args.quiet)
        result[f"{train}->{test}"] = metrics
    return result


def split_both(frames: dict[str, list[Atoms]], test_fraction: float) -> tuple[list[Atoms], dict[str, list[Atoms]]]:
    """Every isomer's frames split at random (seed 0) into training and held-out frames."""
    rng = np.random.default_rng(0)
    train, test = [], {}
    for iso in ISOMERS:
        order = rng.permutation(len(frames[iso]))
        n_test = int(round(test_fraction * len(order)))
        test[iso] = [frames[iso][i] for i in sorted(order[:n_test])]
        train += [frames[iso][i] for i in sorted(order[n_test:])]
    return train, test


def stage_both(frames: dict[str, list[Atoms]], args: argparse.Namespace, out: Path) -> dict:
    train, test = split_both(frames, args.test_fraction)
    model = fit(train, args.workdir / "both.cfm", args.k_norm_both, args.k_direction, args.quiet)
    result = {"train_frames": len(train)}
    for iso in ISOMERS:
        metrics, arrays = evaluate(model, test[iso], args.quiet)
        ref_norm = np.linalg.norm(arrays["reference"], axis=1)
        pred_norm = np.linalg.norm(arrays["forces"], axis=1)
        cos = np.einsum("ij,ij->i", arrays["directions"], arrays["reference"]) / np.where(ref_norm > 0, ref_norm, np.nan)
        angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        plot_norm_parity(ref_norm, pred_norm, arrays["classes"], out / f"fig3_norms_{iso}.png")
        plot_angle_vs_norm(ref_norm, angles, arrays["classes"], out / f"fig4_angles_{iso}.png")
        result[iso] = metrics
    return result


def stage_au25(args: argparse.Namespace, out: Path) -> dict | None:
    """Run the schemes in ``args.schemes`` (each saved to WORKDIR/au25_<scheme>.json as it
    finishes, so several processes can share the work); ``None`` until all four are done."""
    start = datasets.load("au25")[-1]
    start = Atoms(start.numbers, positions=start.positions)
    classes = classify(start)
    reference = make_reference("gfn1-xtb", start, charge=-1)
    result: dict = {"start": {"system": "[Au25(SCH3)18]-", "classes": {c: int((classes == c).sum()) for c in set(classes)}}}
    for name, (schedule, fix_core, reset_every) in SCHEMES.items():
        slug = name.replace(" + ", "_").replace(" ", "_")
        done = args.workdir / f"au25_{slug}.json"
        if not done.exists() and name in args.schemes:
            done.write_text(json.dumps(optimise_au25(start, classes, reference, schedule, fix_core, reset_every, slug, args)))
        if done.exists():
            result[name] = json.loads(done.read_text())
            logging.info("Au25 %s: ΔE final %+.3f eV, lowest %+.3f eV", name, result[name]["energy_change"], result[name]["lowest_change"])
    if not all(name in result for name in SCHEMES):
        return None
    plot_au25(result, out / "fig10_au25.png")
    return result


def optimise_au25(
    start: Atoms,
    classes: np.ndarray,
    reference: Reference,
    schedule: str | None,
    fix_core: bool,
    reset_every: int | None,
    slug: str,
    args: argparse.Namespace,
) -> dict:
    """One ML BFGS scheme from ``start`` and GFN1-xTB energies along its trajectory."""
    from ase.io import read

    atoms = start.copy()
    if fix_core:
        atoms.set_constraint(FixAtoms(indices=np.flatnonzero(classes == "Au_core")))
    atoms.calc = Calculator(args.workdir / "both.cfm")
    parts = parse_partwise(schedule, atoms, classes) if schedule else None
    traj = args.workdir / f"au25_{slug}.traj"
    t0 = time.perf_counter()
    run = ForceOnlyOptimizer(atoms, maxstep=args.au25_maxstep, reset_every=reset_every, parts=parts, trajectory=traj).run(
        fmax=0.0, steps=args.au25_steps
    )
    ml_seconds = time.perf_counter() - t0
    path = read(traj, ":")
    # Energies only up to the first structure outside the training distances would hide the
    # collapse; all steps are evaluated and that step is reported next to them.
    model = atoms.calc.model
    first_outside = next((k for k, frame in enumerate(path) if model.extrapolating(frame).any()), None)
    steps = list(range(0, len(path), args.energy_every))
    if steps[-1] != len(path) - 1:
        steps.append(len(path) - 1)
    energies = single_point_energies([path[k] for k in steps], reference, f"Au25 {slug}", give_up_after=2)
    return {
        "first_extrapolating_step": first_outside,
        "steps": steps,
        "energies": energies.tolist(),
        "resets": run.resets,
        "parts": run.parts,
        "fmax": run.fmax,
        "ml_seconds": ml_seconds,
        "energy_change": float(energies[-1] - energies[0]),
        "lowest_change": float(np.nanmin(energies) - energies[0]),
    }


def plot_au25(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    e0 = next(iter(result[name]["energies"][0] for name in SCHEMES))
    for name in SCHEMES:
        r = result[name]
        e = np.array(r["energies"]) - e0
        (line,) = ax.plot(r["steps"], e, label=name)
        reset_steps = [s for s in r["resets"] if s in r["steps"]]
        ax.plot(reset_steps, [e[r["steps"].index(s)] for s in reset_steps], "x", color="k", ms=7)
    ax.axhline(0.0, ls="--", color="0.5", lw=0.8)
    ax.set_xlabel("ML BFGS step")
    ax.set_ylabel("GFN1-xTB E − E(start) / eV")
    ax.set_title("[Au25(SCH3)18]⁻ snapshot, four ML BFGS schemes (× = Hessian reset)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: dict) -> str:
    lines = ["# Au38(SCH3)24 / Au25(SCH3)18 (OAMLM paper section III) on GFN1-xTB data\n"]
    if "classes" in results:
        lines += ["## Au classes per frame (ours: GFN1-xTB heating MD; paper: DFT MD, 1000 frames)\n",
                  "| isomer | frames | core / frame | unit / frame | half unit / frame | paper core / unit / half unit per frame |",
                  "|---|---:|---:|---:|---:|---|"]  # fmt: skip
        for iso in ISOMERS:
            r = results["classes"][iso]
            n = r["frames"]
            t = r["totals"]
            lines.append(
                f"| {iso} | {n} | {t['core'] / n:.2f} | {t['unit'] / n:.2f} | {t['half_unit'] / n:.3f} | "
                f"{PAPER['core_per_frame'][iso]:.2f} / {PAPER['unit_per_frame'][iso]:.2f} / {PAPER['half_unit_per_frame'][iso]:.3f} |"
            )
    for stage, title in (("cross", "Trained on one isomer, tested on the other"), ("both", "Trained on both, tested on held-out frames")):
        if stage not in results:
            continue
        lines.append(f"\n## {title}\n")
        for key in ("Q->T", "T->Q", "Q", "T"):
            metrics = results[stage].get(key)
            if metrics is not None:
                lines += [
                    f"### {key} ({metrics['n_frames']} test frames, predicted in {metrics['predict_s']:.0f} s)\n",
                    markdown_table(metrics),
                    "",
                ]
    if "au25" in results:
        lines += ["\n## [Au25(SCH3)18]- snapshot, ML BFGS (max step 0.05 Å), GFN1-xTB energies\n",
                  "| scheme | ML steps | ΔE final (eV) | ΔE lowest (eV, at step) | last step with a converged SCF | "
                  "first step outside training distances | resets | ML time (s) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for name in SCHEMES:
            r = results["au25"][name]
            e = np.array(r["energies"], dtype=float) - r["energies"][0]
            ok = np.flatnonzero(np.isfinite(e))
            lowest = int(np.nanargmin(e))
            lines.append(
                f"| {name} | {r['steps'][-1]} | {e[-1]:+.3f} | {e[lowest]:+.3f} ({r['steps'][lowest]}) | {r['steps'][ok[-1]]} | "
                f"{r.get('first_extrapolating_step')} | {len(r['resets'])} | {r['ml_seconds']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=["classes", "cross", "both", "au25"], choices=["classes", "cross", "both", "au25"])
    parser.add_argument("--k-norm", type=int, default=2500, help="EMLM references per class, one isomer (paper: 2500)")
    parser.add_argument("--k-norm-both", type=int, default=5000, help="EMLM references per class, both isomers (paper: 5000)")
    parser.add_argument("--k-direction", type=int, default=1000, help="OAMLM references per class (paper: 2500)")
    parser.add_argument("--test-stride", type=int, default=4, help="cross test: every N-th frame of the other isomer")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="both: frames held out per isomer")
    parser.add_argument("--au25-steps", type=int, default=144, help="ML BFGS steps (4 rounds of outer 24 + core 12)")
    parser.add_argument("--au25-maxstep", type=float, default=0.05)
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=list(SCHEMES), help="au25 schemes this process runs")
    parser.add_argument("--energy-every", type=int, default=3, help="GFN1-xTB single point every N steps")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where JSON, markdown and PNG go")
    parser.add_argument("--workdir", type=Path, default=RESULTS / "work", help="models and trajectories")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s")

    args.workdir.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    frames = isomer_frames()
    results = {}
    for stage in ("classes", "cross", "both", "au25"):
        done = args.results / f"{stage}.json"
        if stage in args.stages and not done.exists():
            if stage == "classes":
                result = stage_classes(frames, args.results)
            elif stage == "cross":
                result = stage_cross(frames, args)
            elif stage == "both":
                result = stage_both(frames, args, args.results)
            else:
                result = stage_au25(args, args.results)
            if result is None:
                continue
            result["settings"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            done.write_text(json.dumps(result, indent=1))
        if done.exists():
            results[stage] = json.loads(done.read_text())
    text = markdown(results)
    (args.results / "au_thiolate.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
