"""Hybrid optimisation against plain ML and plain GFN1-xTB BFGS on hot gold-thiolate rings.

The issue-12 check: from the hottest frame of a GFN1-xTB heating MD of [Au(SCH3)]n (n = 7 by
default, a size the model never saw), optimise with

- GFN1-xTB BFGS (ASE, maximum step 0.1 Angstrom, fmax 0.05 eV/Angstrom, at most STEPS steps);
- the dml model alone (force-only BFGS, maximum step 0.1, STEPS steps, stopping when it
  extrapolates), its final structure evaluated with GFN1-xTB;
- hybrid (model steps checked by GFN1-xTB, ``clusterforce.hybrid``), STEPS model steps.

Reported: GFN1-xTB energy reached, the fraction of the BFGS energy drop, reference calls and CPU
seconds, in one run. The model is a dml model trained on the shipped ``rings`` data (2000/1000
references, as the main job); the MD frames are made here with ``clusterforce datagen`` and cached
in WORKDIR. Writes ``benchmarks/results/hybrid_optimization.{json,md}``. Needs tblite.

    python benchmarks/hybrid_optimization.py --workdir /tmp/hybrid --sizes 7
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ase.io import read
from ase.optimize import BFGS
from clusterforce import Calculator
from clusterforce.calculators import resolve
from clusterforce.hybrid import HybridOptimizer
from clusterforce.optimize import ForceOnlyOptimizer

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


def run_size(n: int, model: Path, steps: int, workdir: Path, check_every: int = 8, trust_radius: float = 0.3) -> dict:
    start = hot_frame(workdir, n)
    out = {"n": n, "atoms": len(start)}
    e0 = reference_energy(start)

    cpu = time.process_time()
    bfgs_atoms = start.copy()
    bfgs_atoms.calc = resolve("gfn1-xtb", bfgs_atoms)
    bfgs = BFGS(bfgs_atoms, maxstep=0.1, logfile=None)
    bfgs.run(fmax=0.05, steps=steps)
    out["bfgs"] = {"energy": float(bfgs_atoms.get_potential_energy()), "calls": bfgs.nsteps + 1, "cpu_s": time.process_time() - cpu}

    cpu = time.process_time()
    ml_atoms = start.copy()
    ml_atoms.calc = Calculator(str(model))
    ml = ForceOnlyOptimizer(ml_atoms, maxstep=0.1, stop_when_extrapolating=True).run(fmax=0.05, steps=steps)
    out["ml"] = {
        "energy": reference_energy(ml_atoms),
        "calls": 1,
        "model_steps": ml.nsteps,
        "stopped": ml.stopped,
        "cpu_s": time.process_time() - cpu,
    }

    cpu = time.process_time()
    hyb_atoms = start.copy()
    result = HybridOptimizer(
        hyb_atoms, Calculator(str(model)), resolve("gfn1-xtb", hyb_atoms), maxstep=0.1, check_every=check_every, trust_radius=trust_radius
    ).run(fmax=0.05, steps=steps)
    out["hybrid"] = {
        "energy": result.final_energy,
        "calls": result.reference_calls,
        "model_steps": result.model_steps,
        "accepted": int(sum(result.accepted)),
        "cpu_s": time.process_time() - cpu,
    }
    drop = out["bfgs"]["energy"] - e0
    out["start_energy"] = e0
    for key in ("bfgs", "ml", "hybrid"):
        out[key]["drop_fraction"] = (out[key]["energy"] - e0) / drop if drop < 0 else float("nan")
        out[key]["calls_fraction"] = out[key]["calls"] / out["bfgs"]["calls"]
    return out


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
    model = workdir / "rings.cfm"
    if not model.exists():
        cli(
            "train",
            "--kind",
            "dml",
            "dataset:rings",
            "-o",
            str(model),
            "--n-references-norm",
            "2000",
            "--n-references-direction",
            "1000",
            "--quiet",
        )
    rows = [run_size(n, model, args.steps, workdir, args.check_every, args.trust_radius) for n in args.sizes]
    lines = [
        "| ring | method | GFN1-xTB energy reached (eV) | fraction of BFGS drop | reference calls | calls / BFGS calls | CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for key, name in (("bfgs", "GFN1-xTB BFGS"), ("ml", "dml alone"), ("hybrid", "hybrid")):
            m = r[key]
            lines.append(
                f"| {r['n']} | {name} | {m['energy'] - r['start_energy']:+.3f} | {m['drop_fraction']:.3f} | {m['calls']} "
                f"| {m['calls_fraction']:.2f} | {m['cpu_s']:.0f} |"
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
