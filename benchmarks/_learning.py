"""What learn_sodium.py and learn_rings.py share: the command line, and training the model a user
would start from and the one ``clusterforce learn`` grows from it (both cached in the work directory)."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "clusterforce", *args], check=True)


def parse_args(doc: str, workdir: str, max_calls: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=workdir)
    parser.add_argument("--max-calls", type=int, default=max_calls)
    parser.add_argument("--learn-args", default="", help="extra arguments for clusterforce learn (one quoted string)")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    return args


def train_and_learn(args: argparse.Namespace, kind: str, dataset: str, explore: list[str]) -> dict:
    """``clusterforce train --kind KIND dataset:NAME`` and ``clusterforce learn`` from it with the
    exploration arguments ``explore``; returns the two model paths, the learn command, its summary
    (calls, skipped) and the wall seconds of whatever ran now."""
    workdir = Path(args.workdir)
    suffix = f"-{args.tag}" if args.tag else ""
    base, learned = workdir / f"{dataset}-{kind}.cfm", workdir / f"{dataset}-{kind}-learned{suffix}.cfm"
    timings = {}
    if not base.exists():
        t = time.perf_counter()
        cli("train", "--kind", kind, f"dataset:{dataset}", "-o", str(base), "--quiet")
        timings["train_s"] = time.perf_counter() - t
    learn = ["learn", "--kind", kind, "--reference", "gfn1-xtb", *explore, "--init", f"dataset:{dataset}"]
    learn += ["--max-calls", str(args.max_calls), "-o", str(learned), "--quiet", *shlex.split(args.learn_args)]
    if not learned.exists():
        t = time.perf_counter()
        cli(*learn)
        timings["learn_s"] = time.perf_counter() - t
    summary = json.loads((learned.parent / (learned.stem + "_learn") / "summary.json").read_text())
    return {"base": base, "learned": learned, "command": "clusterforce " + " ".join(learn), "summary": summary, "timings": timings}


def write_results(name: str, args: argparse.Namespace, title: str, result: dict, table: str) -> None:
    """``benchmarks/results/NAME[-TAG].{json,md}``: the numbers, and the table under the learn command."""
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    stem = name + (f"-{args.tag}" if args.tag else "")
    (results / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    calls = f"{result['reference_calls']} reference calls ({result['skipped_calls']} skipped)"
    (results / f"{stem}.md").write_text(f"# {title}\n\n`{result['learn_command']}`: {calls}\n\n{table}\n")
