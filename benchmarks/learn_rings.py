"""On-the-fly learning of a dml model on gold-thiolate rings, judged on ring sizes it never saw (issue 12).

Trains the dml model the product gives a user of the shipped rings (``clusterforce train --kind dml
dataset:rings``, n = 4-6), runs the issue's learning loop from it (``clusterforce learn --kind dml
--reference gfn1-xtb --system ring --n 4 5 6 --init dataset:rings --max-calls 200``; extra arguments
with ``--learn-args``), and tests both on GFN1-xTB MD of [Au(SCH3)]7 and [Au(SCH3)]8 that neither saw,
made here and cached in WORKDIR:

- open: from the built rings (nearest Au-Au 3.6-4.0 Angstrom), 300 -> 600 -> 900 K;
- puckered: from the lowest conformer a gap model of the same data finds by MD and quenches
  (``clusterforce search --method md-quench``; Au-Au contacts near 2.9 Angstrom, as in the shipped
  rings), 300 -> 600 -> 900 K.

Reported per model and test set: norm RMSE (eV/Angstrom) and |F|^2-weighted angle (degrees) per atom
class, and the loop's reference calls. Issue 12's target: unit Au, S and H norm RMSE < 0.3 eV/Angstrom
and weighted angle <= 30 degrees. Writes ``benchmarks/results/learn_rings.{json,md}``. Needs tblite.

    python benchmarks/learn_rings.py --workdir /tmp/learn-rings
"""

from __future__ import annotations

import sys
from pathlib import Path

from ase.io import read, write
from clusterforce.core.registry import load_model
from clusterforce.kinds.dml.metrics import evaluate_model

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _learning import cli, parse_args, train_and_learn, write_results  # noqa: E402

MD = ("--reference", "gfn1-xtb", "--temperatures", "300", "600", "900", "--steps-per-temperature", "100", "--frames", "20")


def test_sets(workdir: Path) -> dict[str, list]:
    open_path = workdir / "open_ring7_8.extxyz"
    cli("datagen", "--system", "ring", "--n", "7", "8", *MD, "--seed", "21", "-o", str(open_path), "--resume", "--quiet")
    gap = workdir / "rings-gap.cfm"
    if not gap.exists():
        cli("train", "--kind", "gap", "dataset:rings", "-o", str(gap), "--quiet")
    starts = workdir / "puckered_starts.extxyz"
    if not starts.exists():
        from clusterforce.workflows.datagen.builders import gold_thiolate_ring

        lowest = []
        for n in (7, 8):
            built = workdir / f"ring{n}_built.xyz"
            write(built, gold_thiolate_ring(n))
            out = workdir / f"ring{n}_search.json"
            db = workdir / f"ring{n}_conformers.db"
            cli("search", str(built), "--method", "md-quench", "--reference", str(gap), "--steps", "600", "--temperature", "600",
                "--seed", "3", "--db", str(db), "--json", str(out))  # fmt: skip
            from ase.db import connect

            lowest.append(min(connect(db).select(), key=lambda row: row.energy).toatoms())
        write(starts, lowest)
    puckered_path = workdir / "puckered_ring7_8.extxyz"
    cli("datagen", "--start", str(starts), *MD, "--seed", "22", "-o", str(puckered_path), "--resume", "--quiet")
    return {"open ring7, ring8": read(open_path, ":"), "puckered ring7, ring8": read(puckered_path, ":")}


def metrics(model_path: Path, frames: list) -> dict:
    return evaluate_model(load_model(model_path), frames, progress=False)[0]


def main() -> None:
    args = parse_args(__doc__, "learn-rings-work", 200)
    tests = test_sets(Path(args.workdir))
    run = train_and_learn(args, "dml", "rings", ["--system", "ring", "--n", "4", "5", "6"])
    base, learned, summary = run["base"], run["learned"], run["summary"]
    result = {"learn_command": run["command"], "reference_calls": summary["calls"], "skipped_calls": summary["skipped"], **run["timings"]}
    result["models"] = {}
    lines = ["| model | test | class | atoms | norm RMSE (eV/Å) | weighted angle (°) |", "|---|---|---|---|---|---|"]
    for name, path in (("trained on dataset:rings", base), ("after clusterforce learn", learned)):
        result["models"][name] = {}
        for test, frames in tests.items():
            m = metrics(path, frames)
            result["models"][name][test] = m
            for cls, c in m["classes"].items():
                lines.append(f"| {name} | {test} | {cls} | {c['n']} | {c['norm_rmse']:.3f} | {c['weighted_angle_deg']:.1f} |")
    table = "\n".join(lines)
    print(table)
    write_results("learn_rings", args, "dml learning on rings n = 4-6, tested on unseen ring7 and ring8 GFN1-xTB MD", result, table)


if __name__ == "__main__":
    main()
