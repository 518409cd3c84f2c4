"""Na55 heat capacity with the gap model of the shipped Na data: the issue-14 curve, reproducible.

1. ``clusterforce train --kind gap dataset:na`` (default preset for sodium: gap-sodium);
2. ``clusterforce md`` from the lowest Na55 of ../shared/structures/qcd_low_energy_Na.extxyz, one
   LAMMPS Nose-Hoover replica per temperature (2 fs; ``--jobs`` replicas at a time, one thread each);
3. ``clusterforce heat-capacity`` (multiple histogram, block bootstrap), the first ``--skip-ps``
   of each replica dropped.

Copies the curve and plot to ``benchmarks/results/na55_cv.{json,png}``; the JSON carries the MD steps
and CPU seconds of every replica. The model is trained on GFN1-xTB data (2000 K electronic
temperature), so the curve is that model's, not the gap-sodium paper's DFT one (peak 281 K) or
experiment's (290 K).

    python benchmarks/na55_heat_capacity.py --workdir /tmp/na55cv --temperatures 150 200 250 300 350 --ps 24
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ase.io import read, write

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def cli(*args: str, threads: int = 1) -> None:
    env = {"OMP_NUM_THREADS": str(threads)}
    subprocess.run([sys.executable, "-m", "clusterforce", *args], check=True, env={**os.environ, **env})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="na55-cv")
    parser.add_argument("--start", default=str(ROOT / ".." / "shared" / "structures" / "qcd_low_energy_Na.extxyz"))
    parser.add_argument("--temperatures", type=float, nargs="+", default=[150, 200, 250, 300, 350])
    parser.add_argument("--ps", type=float, default=24.0, help="MD per replica, ps (2 fs steps)")
    parser.add_argument("--skip-ps", type=float, default=4.0, help="equilibration dropped from each replica, ps")
    parser.add_argument("--jobs", type=int, default=2, help="replicas run at the same time")
    args = parser.parse_args()
    if not Path(args.start).is_file():
        print(f"na55_heat_capacity: {args.start} is missing (the shared structures are not next to this clone; see --start)")
        return 1
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model, start = work / "na.cfm", work / "na55.xyz"
    if not model.exists():
        cli("train", "--kind", "gap", "dataset:na", "-o", str(model), "--quiet", threads=2)
    write(start, next(a for a in read(args.start, ":") if len(a) == 55))
    steps, sample_every = int(round(args.ps * 500)), 10
    out = work / "replicas"

    def replica(t: float) -> None:
        cli("md", str(model), str(start), "--temperatures", f"{t:g}", "--steps", str(steps), "--sample-every", str(sample_every),
            "-o", str(out), "--quiet")  # fmt: skip

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(replica, args.temperatures))
    skip = int(round(args.skip_ps * 500 / sample_every))
    cli("heat-capacity", str(out), "--skip", str(skip), "--temperatures", *[f"{t:g}" for t in args.temperatures],
        "--json", str(work / "na55_cv.json"), "--plot", str(work / "na55_cv.png"))  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    shutil.copy(work / "na55_cv.json", RESULTS / "na55_cv.json")
    shutil.copy(work / "na55_cv.png", RESULTS / "na55_cv.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
