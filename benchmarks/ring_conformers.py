"""Conformers of a gold-thiolate ring the model never saw: a gap search checked by GFN1-xTB.

The issue-14 example for ligand-protected clusters, end to end with the user's commands:

1. ``clusterforce train --kind gap dataset:rings`` (rings n = 4-6, the default ``ligand`` preset);
2. ``clusterforce search START --method md-quench --reference rings.cfm --reoptimize K`` from an
   [Au(SCH3)]7 MD frame (GFN1-xTB MD made here with ``clusterforce datagen``): Langevin MD at
   TEMPERATURE with the model, a quench every 100 steps, distinct minima deduplicated, and the K
   lowest relaxed again with GFN1-xTB.

Reported: distinct conformers, and for the K re-optimised ones the model and GFN1-xTB energies
(relative to the lowest), how far GFN1-xTB moved each minimum, and whether the model's order
survives. Writes ``benchmarks/results/ring_conformers.{json,md}``. Needs tblite.

    python benchmarks/ring_conformers.py --workdir /tmp/rc
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ase.io import read, write
from scipy.stats import spearmanr

RESULTS = Path(__file__).resolve().parent / "results"


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "clusterforce", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="ring-conformers")
    parser.add_argument("--n", type=int, default=7, help="ring size (the model is trained on 4-6)")
    parser.add_argument("--steps", type=int, default=1000, help="MD steps of the search")
    parser.add_argument("--temperature", type=float, default=600.0)
    parser.add_argument("--reoptimize", type=int, default=5)
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model, md, start = work / "rings.cfm", work / f"ring{args.n}_md.extxyz", work / f"ring{args.n}_start.xyz"
    if not model.exists():
        cli("train", "--kind", "gap", "dataset:rings", "-o", str(model), "--quiet")
    if not md.exists():
        cli(
            "datagen",
            "--system",
            "ring",
            "--n",
            str(args.n),
            "--reference",
            "gfn1-xtb",
            "--temperatures",
            "300",
            "--steps-per-temperature",
            "40",
            "--frames",
            "5",
            "--seed",
            "1",
            "-o",
            str(md),
            "--resume",
            "--quiet",
        )
    write(start, read(md, -1))
    summary_path = work / "search.json"
    cpu = time.time()
    cli(
        "search",
        str(start),
        "--method",
        "md-quench",
        "--reference",
        str(model),
        "--steps",
        str(args.steps),
        "--temperature",
        str(args.temperature),
        "--quench-every",
        "100",
        "--fmax",
        "0.01",
        "--reoptimize",
        str(args.reoptimize),
        "--db",
        str(work / "conformers.db"),
        "--json",
        str(summary_path),
        "--quiet",
    )
    wall = time.time() - cpu
    s = json.loads(summary_path.read_text())
    checked = s["reoptimized"]
    e_model = [r["energy"] - checked[0]["energy"] for r in checked]
    e_ref_min = min(r["reference_energy"] for r in checked)
    e_ref = [r["reference_energy"] - e_ref_min for r in checked]
    rho = spearmanr(e_model, e_ref).statistic if len(checked) >= 3 else float("nan")
    out = {
        "n": args.n,
        "md_steps": args.steps,
        "temperature_K": args.temperature,
        "distinct_minima": s["n_minima"],
        "search_cpu_s": s["cpu_seconds"],
        "wall_s": wall,
        "reoptimized": checked,
        "distinct_after_reoptimization": s["reoptimized_distinct"],
        "spearman_model_vs_reference": rho,
    }
    lines = [
        f"# [Au(SCH3)]{args.n} conformers: gap md-quench search ({args.steps} MD steps at {args.temperature:g} K), "
        f"{s['n_minima']} distinct minima; the {len(checked)} lowest re-optimised with GFN1-xTB",
        "",
        "| rank (model) | model energy (eV, rel.) | GFN1-xTB energy after re-optimisation (eV, rel.) | GFN1-xTB move (Å) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['rank']} | {em:+.3f} | {er:+.3f} | {r['move']:.2f} |" for r, em, er in zip(checked, e_model, e_ref)]
    lines += [
        "",
        f"The {len(checked)} re-optimised minima are {s['reoptimized_distinct']} distinct GFN1-xTB minima. Spearman ρ (model order "
        f"vs GFN1-xTB order): {rho:.2f}; search CPU {s['cpu_seconds']:.0f} s, total wall {wall:.0f} s.",
    ]
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ring_conformers.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / "ring_conformers.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
