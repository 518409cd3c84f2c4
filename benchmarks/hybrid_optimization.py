"""Hybrid optimisation against plain ML and plain GFN1-xTB BFGS on hot gold-thiolate rings.

The issue-12 check: from the hottest frame of a GFN1-xTB heating MD of [Au(SCH3)]n (n = 7 by
default, a size the model never saw), optimise with

- GFN1-xTB BFGS (ASE, maximum step 0.1 Angstrom, fmax 0.05 eV/Angstrom, at most STEPS steps);
- each model alone (force-only BFGS, maximum step 0.1, STEPS steps, stopping when it
  extrapolates or its RMS force stalls for 20 steps, as ``clusterforce optimize``), its final
  structure evaluated with GFN1-xTB;
- hybrid with each model (model steps checked by GFN1-xTB, ``clusterforce.workflows.hybrid``), STEPS model steps;
- the same hybrid with a zero-force model (its GP force correction alone: what the model adds);
- ASE's GPMin on GFN1-xTB (a GP surrogate of energies and forces, no model), up to 60 % of BFGS's calls.

Reported: GFN1-xTB energy reached, the fraction of the BFGS energy drop, reference calls, the
fraction of the drop reached within 30 % of the BFGS's calls (issue 12's target: >= 0.9) and CPU
seconds, in one run. The models are a dml and a gap model trained on the shipped ``rings`` data
with the default settings (``clusterforce train --kind dml|gap dataset:rings``); the MD frames are made
here with ``clusterforce datagen`` and cached in WORKDIR. Writes ``benchmarks/results/hybrid_optimization.{json,md}``. Needs tblite.

    python benchmarks/hybrid_optimization.py --workdir /tmp/hybrid --sizes 7
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator as Calculator_
from ase.calculators.calculator import all_changes
from ase.io import read
from ase.optimize import BFGS, GPMin
from clusterforce import Calculator
from clusterforce.references import resolve
from clusterforce.workflows.hybrid import HybridOptimizer
from clusterforce.workflows.optimize import ForceOnlyOptimizer

RESULTS = Path(__file__).resolve().parent / "results"


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "clusterforce", *args], check=True)


def hot_frame(workdir: Path, n: int):
    path = workdir / f"ring{n}_md.extxyz"
    if not path.exists():
        cli(
            "datagen",
            "--system",
            "ring",
            "--n",
            str(n),
            "--reference",
            "gfn1-xtb",
            "--temperatures",
            "600",
            "900",
            "--steps-per-temperature",
            "60",
            "--frames",
            "20",
            "--seed",
            "3",
            "-o",
            str(path),
            "--resume",
            "--quiet",
        )
    frames = read(path, ":")
    return frames[-1]


def reference_energy(atoms) -> float:
    probe = atoms.copy()
    probe.calc = resolve("gfn1-xtb", probe)
    return float(probe.get_potential_energy())


class CountingReference:
    """GFN1-xTB with every energy it computes recorded (eV), so any optimiser's calls are counted."""

    def __init__(self, atoms):
        self.calc = resolve("gfn1-xtb", atoms)
        self.energies: list[float] = []
        inner = self.calc.calculate

        def calculate(*args, **kwargs):
            inner(*args, **kwargs)
            self.energies.append(float(self.calc.results["energy"]))

        self.calc.calculate = calculate


class NoModel(Calculator_):
    """Zero forces: the hybrid's surrogate is then its force-correction GP alone (the ablation)."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.zeros((len(atoms), 3))}


def run_size(n: int, models: dict[str, Path], steps: int, workdir: Path, check_every: int = 8, trust_radius: float = 0.3) -> dict:
    start = hot_frame(workdir, n)
    out = {"n": n, "atoms": len(start)}
    e0 = reference_energy(start)
    trace = {}

    cpu = time.process_time()
    bfgs_atoms = start.copy()
    ref = CountingReference(bfgs_atoms)
    bfgs_atoms.calc = ref.calc
    bfgs = BFGS(bfgs_atoms, maxstep=0.1, logfile=None)
    bfgs.run(fmax=0.05, steps=steps)
    out["bfgs"] = {"energy": float(bfgs_atoms.get_potential_energy()), "calls": len(ref.energies), "cpu_s": time.process_time() - cpu}
    trace["bfgs"] = ref.energies
    budget = max(1, int(0.3 * out["bfgs"]["calls"]))

    for kind, model in models.items():
        cpu = time.process_time()
        ml_atoms = start.copy()
        ml_atoms.calc = Calculator(str(model))
        ml = ForceOnlyOptimizer(ml_atoms, maxstep=0.1, stop_when_extrapolating=True, patience=20).run(fmax=0.05, steps=steps)
        key = f"{kind}_alone"
        out[key] = {
            "energy": reference_energy(ml_atoms),
            "calls": 1,
            "model_steps": ml.nsteps,
            "stopped": ml.stopped,
            "cpu_s": time.process_time() - cpu,
        }
        trace[key] = [e0, out[key]["energy"]]

    surrogates = {f"{kind}_hybrid": (lambda model=model: Calculator(str(model))) for kind, model in models.items()}
    surrogates["gp"] = NoModel
    for key, surrogate in surrogates.items():
        cpu = time.process_time()
        hyb_atoms = start.copy()
        result = HybridOptimizer(
            hyb_atoms, surrogate(), resolve("gfn1-xtb", hyb_atoms), maxstep=0.1, check_every=check_every, trust_radius=trust_radius
        ).run(fmax=0.05, steps=steps)
        out[key] = {
            "energy": result.final_energy,
            "calls": result.reference_calls,
            "model_steps": result.model_steps,
            "accepted": int(sum(result.accepted)),
            "cpu_s": time.process_time() - cpu,
        }
        trace[key] = [e if np.isfinite(e) else np.inf for e in result.reference_energies]

    # ASE's GPMin (a GP surrogate on reference energies and forces, no model), up to twice the
    # 30 % budget: its cost grows with the cube of the calls times the coordinates.
    cpu = time.process_time()
    gp_atoms = start.copy()
    ref = CountingReference(gp_atoms)
    gp_atoms.calc = ref.calc
    try:
        for _ in GPMin(gp_atoms, logfile=None).irun(fmax=0.05, steps=steps):
            if len(ref.energies) >= 2 * budget:
                break
    except RuntimeError as exc:  # GPMin gives up when it cannot build a descent model
        out["gpmin_error"] = str(exc)
    out["gpmin"] = {"energy": float(min(ref.energies)), "calls": len(ref.energies), "cpu_s": time.process_time() - cpu}
    trace["gpmin"] = ref.energies

    drop = out["bfgs"]["energy"] - e0
    out["start_energy"] = e0
    out["call_budget"] = budget
    for key in METHODS:
        out[key]["drop_fraction"] = (out[key]["energy"] - e0) / drop if drop < 0 else float("nan")
        out[key]["calls_fraction"] = out[key]["calls"] / out["bfgs"]["calls"]
        # The lowest reference energy seen within 30 % of the BFGS's calls (the issue-12 target).
        within = min(trace[key][:budget])
        out[key]["drop_fraction_at_budget"] = (within - e0) / drop if drop < 0 else float("nan")
    return out


METHODS = {
    "bfgs": "GFN1-xTB BFGS",
    "dml_alone": "dml alone",
    "dml_hybrid": "hybrid (dml + GP correction)",
    "gap_alone": "gap alone",
    "gap_hybrid": "hybrid (gap + GP correction)",
    "gp": "hybrid without a model (GP correction alone)",
    "gpmin": "ASE GPMin (no model)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="hybrid-work")
    parser.add_argument("--sizes", type=int, nargs="+", default=[7])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--check-every", type=int, default=8, help="hybrid: model steps between reference checks at most")
    parser.add_argument("--trust-radius", type=float, default=0.3, help="hybrid: initial trust radius, Angstrom")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    models = {kind: workdir / f"rings-{kind}.cfm" for kind in ("dml", "gap")}
    for kind, model in models.items():
        if not model.exists():
            cli("train", "--kind", kind, "dataset:rings", "-o", str(model), "--quiet")
    rows = [run_size(n, models, args.steps, workdir, args.check_every, args.trust_radius) for n in args.sizes]
    lines = [
        "| ring | method | GFN1-xTB energy reached (eV) | fraction of BFGS drop | reference calls | calls / BFGS calls "
        "| fraction of drop within 30 % of BFGS calls | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for key, name in METHODS.items():
            m = r[key]
            lines.append(
                f"| {r['n']} | {name} | {m['energy'] - r['start_energy']:+.3f} | {m['drop_fraction']:.3f} | {m['calls']} "
                f"| {m['calls_fraction']:.2f} | {m['drop_fraction_at_budget']:.3f} | {m['cpu_s']:.0f} |"
            )
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    name = "hybrid_optimization" + (f"-{args.tag}" if args.tag else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2, default=float) + "\n")
    (RESULTS / f"{name}.md").write_text(
        f"# Hybrid optimisation of hot rings ({args.steps} steps; energies relative to the start)\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
