"""Na55 heat capacity by parallel tempering in LAMMPS (``clusterforce md --exchange``), issue 28 item 3.

1. A fast sodium gap: ``clusterforce train --kind gap dataset:na`` with 2b + 3b (mapped on splines, the
   default) and a short ζ = 2 SOAP (7 Å, n_max 8, l_max 4) instead of the paper's 12.9 Å / n_max 12 SOAP;
   its accuracy is measured held out (trained without the Na55 frames, tested on them);
2. ``clusterforce md --exchange`` from the lowest Na55 of ../shared/structures/qcd_low_energy_Na.extxyz:
   16 temperatures geometrically spaced over the paper's 60-330 K, Langevin (1 ps), 2 fs, swaps every
   0.5 ps, ``--ranks`` MPI ranks;
3. ``clusterforce heat-capacity`` (multiple histogram, block bootstrap), the first ``--skip-ps`` dropped.

Writes ``benchmarks/results/na55_pt.{json,png}``: the curve, run length, CPU time, swap acceptance,
the peak with its bootstrap spread and C_v/C_0 at both ends of the ladder. Rerunning with the same
``--workdir`` resumes the MD (a larger ``--ps`` continues it). The model is trained on GFN1-xTB data,
so the curve is this model's, not the gap-sodium paper's DFT one.

    python benchmarks/na55_tempering.py --workdir /tmp/na55pt --ps 200 --ranks 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase.io import read, write

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SOAP = ["--r-cut-soap", "7.0", "--n-max-soap", "8", "--l-max-soap", "4", "--zeta-soap", "2"]
TIMESTEP_FS, SAMPLE_EVERY, EXCHANGE_EVERY = 2.0, 10, 250


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "clusterforce", *args], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def held_out_accuracy(work: Path) -> dict:
    """Energy (meV/atom) and force (eV/Angstrom) RMSE on the Na55 frames of dataset:na, trained without them."""
    out = work / "heldout_na55.json"
    if not out.exists():
        from clusterforce.data import datasets

        frames = datasets.load("na")
        write(work / "na_no55.extxyz", [a for a in frames if len(a) != 55])
        write(work / "na55_frames.extxyz", [a for a in frames if len(a) == 55])
        cli("train", "--kind", "gap", str(work / "na_no55.extxyz"), *SOAP, "-o", str(work / "heldout.cfm"), "--quiet")
        cli("evaluate", str(work / "heldout.cfm"), str(work / "na55_frames.extxyz"), "--json", str(out), "--quiet")
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="na55-pt")
    parser.add_argument("--start", default=str(ROOT / ".." / "shared" / "structures" / "qcd_low_energy_Na.extxyz"))
    parser.add_argument("--t-min", type=float, default=60.0)
    parser.add_argument("--t-max", type=float, default=330.0)
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument("--ps", type=float, default=200.0, help="MD per temperature, ps")
    parser.add_argument("--skip-ps", type=float, default=5.0, help="equilibration dropped from each temperature, ps")
    parser.add_argument("--ranks", type=int, default=2)
    args = parser.parse_args()
    if not Path(args.start).is_file():
        print(f"na55_tempering: {args.start} is missing (the shared structures are not next to this clone; see --start)")
        return 1
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    accuracy = held_out_accuracy(work)
    model, start = work / "na_fast.cfm", work / "na55.xyz"
    if not model.exists():
        cli("train", "--kind", "gap", "dataset:na", *SOAP, "-o", str(model), "--quiet")
    if not start.exists():
        write(start, next(a for a in read(args.start, ":") if len(a) == 55))
    temps = [f"{t:.1f}" for t in args.t_min * (args.t_max / args.t_min) ** (np.arange(args.replicas) / (args.replicas - 1))]
    steps = int(round(args.ps * 1000 / TIMESTEP_FS / EXCHANGE_EVERY)) * EXCHANGE_EVERY
    out = work / "replicas"
    cli("md", str(model), str(start), "--temperatures", *temps, "--steps", str(steps), "--sample-every", str(SAMPLE_EVERY),
        "--checkpoint-every", "1000", "--exchange", str(EXCHANGE_EVERY), "--ranks", str(args.ranks), "--thermostat", "langevin",
        "--damping", "1000", "--timestep", str(TIMESTEP_FS), "-o", str(out), "--quiet")  # fmt: skip
    skip = int(round(args.skip_ps * 1000 / TIMESTEP_FS / SAMPLE_EVERY))
    cli("heat-capacity", str(out), "--skip", str(skip), "--bootstrap", "100", "--json", str(work / "na55_pt.json"),
        "--plot", str(work / "na55_pt.png"))  # fmt: skip
    result = json.loads((work / "na55_pt.json").read_text())
    state = json.loads((out / "tempering_state.json").read_text())
    cpu = float(state["cpu_seconds"])
    result.update(
        model="gap dataset:na, 2b + 3b (mapped) + SOAP 7 A n_max 8 l_max 4 zeta 2",
        held_out_na55={"energy_rmse_meV_per_atom": accuracy["energy_rmse_mev_per_atom"], "force_rmse_eV_per_A": accuracy["force_rmse"]},
        md="LAMMPS parallel tempering, Langevin 1 ps, 2 fs, swaps every 0.5 ps",
        ps_per_temperature=state["step"] * TIMESTEP_FS / 1000.0,
        equilibration_dropped_ps=args.skip_ps,
        cpu_seconds_total=cpu,
        cpu_ms_per_replica_step=1000.0 * cpu / (state["step"] * len(temps)),
        swap_acceptance=[a / max(n, 1) for a, n in zip(state["accepted"], state["attempts"])],
        cv_over_c0_lowest_T=result["cv_over_c0"][0],
        cv_over_c0_highest_T=result["cv_over_c0"][-1],
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "na55_pt.json").write_text(json.dumps(result, indent=1) + "\n")
    shutil.copy(work / "na55_pt.png", RESULTS / "na55_pt.png")
    print(json.dumps({k: result[k] for k in ("peak_K", "peak_K_spread", "interior_peak_K", "interior_peak_K_spread",
                                             "ps_per_temperature", "cpu_seconds_total", "cv_over_c0_lowest_T",
                                             "cv_over_c0_highest_T")}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
