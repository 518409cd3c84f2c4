"""Na55 heat capacity by parallel tempering in LAMMPS (``clusterforce md --exchange``), issue 28 item 3.

1. Candidate fast sodium gaps (``--compare``), each trained on ``dataset:na`` without its Na55 frames and
   tested on them (energy and force RMSE), and timed in LAMMPS: one Langevin replica of Na55 at the top
   of the ladder for ``--cost-ps`` (CPU ms per MD step; an atom leaving the cluster there stops it and
   is reported as ``evaporated``). The candidates, all 2b + 3b mapped on splines (the paper's 12.9 Å /
   3.5 Å):  ``2b3b`` (no SOAP), ``soap6`` (ζ = 2 SOAP 6 Å, n_max 6, l_max 3), ``soap7`` (7 Å, 8, 4);
   the paper's SOAP is 12.9 Å, n_max 12, l_max 6, ζ 4;
2. the ``--model`` candidate trained on all of ``dataset:na`` runs ``clusterforce md --exchange`` from the
   lowest Na55 of ../shared/structures/qcd_low_energy_Na.extxyz: ``--replicas`` temperatures geometrically
   spaced over the paper's 60-330 K, Langevin (1 ps), 2 fs, swaps every 0.5 ps, ``--ranks`` MPI ranks;
3. ``clusterforce heat-capacity`` (multiple histogram, block bootstrap) after dropping the first
   ``--skip-ps``, and again on the second half of the run alone (the peak should not move).

Writes ``benchmarks/results/na55_pt.{json,png}``: the candidates' accuracy and cost, the curve, run length,
CPU time, swap acceptance per neighbouring pair, every local maximum of C_v/C_0, the highest one with the
spread of its position over the bootstrap curves, C_v/C_0 at both ends and whether that maximum stands
clear of them (above each end by more than twice the combined bootstrap error). Rerunning with the same
``--workdir`` resumes the MD (a larger ``--ps`` continues it). The models are trained on GFN1-xTB data,
so the curve is this model's, not the gap-sodium paper's DFT one.

    nice -n 10 python benchmarks/na55_tempering.py --workdir /tmp/na55pt --model soap6 --ps 200 --ranks 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase.io import read, write

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CANDIDATES = {
    "2b3b": ("gap dataset:na, 2b + 3b (mapped on splines), no SOAP", ["--terms", "2b", "3b"]),
    "soap6": (
        "gap dataset:na, 2b + 3b (mapped) + SOAP 6 A n_max 6 l_max 3 zeta 2",
        ["--r-cut-soap", "6.0", "--n-max-soap", "6", "--l-max-soap", "3", "--zeta-soap", "2"],
    ),
    "soap7": (
        "gap dataset:na, 2b + 3b (mapped) + SOAP 7 A n_max 8 l_max 4 zeta 2",
        ["--r-cut-soap", "7.0", "--n-max-soap", "8", "--l-max-soap", "4", "--zeta-soap", "2"],
    ),
}
TIMESTEP_FS, SAMPLE_EVERY, EXCHANGE_EVERY = 2.0, 10, 250
LANGEVIN = ["--thermostat", "langevin", "--damping", "1000", "--timestep", str(TIMESTEP_FS), "--sample-every", str(SAMPLE_EVERY)]


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "clusterforce", *args], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def candidate(work: Path, name: str, start: Path, temperature: float, cost_ps: float) -> dict:
    """Held-out Na55 accuracy (meV/atom, eV/Angstrom) and LAMMPS cost (CPU ms per MD step of Na55) of one candidate."""
    description, flags = CANDIDATES[name]
    accuracy = work / f"heldout_{name}.json"
    if not accuracy.exists():
        from clusterforce.data import datasets

        if not (work / "na_no55.extxyz").exists():
            frames = datasets.load("na")
            write(work / "na_no55.extxyz", [a for a in frames if len(a) != 55])
            write(work / "na55_frames.extxyz", [a for a in frames if len(a) == 55])
        cli("train", "--kind", "gap", str(work / "na_no55.extxyz"), *flags, "-o", str(work / f"heldout_{name}.cfm"), "--quiet")
        cli("evaluate", str(work / f"heldout_{name}.cfm"), str(work / "na55_frames.extxyz"), "--json", str(accuracy), "--quiet")
    measured = json.loads(accuracy.read_text())
    # The held-out model has the full model's terms and sizes, so its cost per step is the full model's.
    cost_dir = work / f"cost_{name}_{temperature:g}K"
    steps = int(round(cost_ps * 1000 / TIMESTEP_FS))
    subprocess.run(
        [sys.executable, "-m", "clusterforce", "md", str(work / f"heldout_{name}.cfm"), str(start), "--temperatures", f"{temperature:g}",
         "--steps", str(steps), *LANGEVIN, "--checkpoint-every", "500", "-o", str(cost_dir), "--quiet"],
        check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    status = json.loads(next(cost_dir.glob("T*/status.json")).read_text())
    # An evaporated replica records no steps; its CPU time covers the steps up to the check that stopped it.
    stopped = re.search(r"at step (\d+)", status.get("message", ""))
    ran = int(stopped.group(1)) if status["status"] == "evaporated" and stopped else status["steps"]
    return {
        "model": description,
        "held_out_na55_energy_rmse_meV_per_atom": measured["energy_rmse_mev_per_atom"],
        "held_out_na55_force_rmse_eV_per_A": measured["force_rmse"],
        "cost_run": f"one Langevin replica of Na55 at {temperature:g} K, {cost_ps:g} ps",
        "cost_run_status": status["status"],
        "cost_run_steps": ran,
        "cpu_ms_per_md_step": 1000.0 * status["cpu_seconds"] / ran if ran else None,
        "message": status.get("message", ""),
    }


def local_maxima(grid: np.ndarray, c0: np.ndarray, err: np.ndarray) -> list[dict]:
    inside = np.flatnonzero((c0[1:-1] > c0[:-2]) & (c0[1:-1] >= c0[2:])) + 1
    return [{"T_K": float(grid[i]), "cv_over_c0": float(c0[i]), "err": float(err[i])} for i in inside]


def analyse(out: Path, work: Path, tag: str, skip: int) -> dict:
    cli("heat-capacity", str(out), "--skip", str(skip), "--bootstrap", "100", "--json", str(work / f"{tag}.json"),
        "--plot", str(work / f"{tag}.png"))  # fmt: skip
    result = json.loads((work / f"{tag}.json").read_text())
    grid, c0, err = (np.array(result[k]) for k in ("grid_K", "cv_over_c0", "cv_over_c0_err"))
    maxima = local_maxima(grid, c0, err)
    result["local_maxima"] = maxima
    top = max(maxima, key=lambda m: m["cv_over_c0"]) if maxima else None
    ends = {"lowest_T": (c0[0], err[0]), "highest_T": (c0[-1], err[-1])}
    result["cv_over_c0_ends"] = {k: {"T_K": float(grid[0 if k == "lowest_T" else -1]), "cv_over_c0": float(v), "err": float(e)}
                                 for k, (v, e) in ends.items()}  # fmt: skip
    result["peak_clear_of_ends"] = bool(
        top is not None and all(top["cv_over_c0"] - v > 2.0 * np.hypot(top["err"], e) for v, e in ends.values())
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="na55-pt")
    parser.add_argument("--start", default=str(ROOT / ".." / "shared" / "structures" / "qcd_low_energy_Na.extxyz"))
    parser.add_argument("--model", choices=sorted(CANDIDATES), default="soap6", help="candidate that runs the tempering")
    parser.add_argument("--compare", nargs="*", choices=sorted(CANDIDATES), default=["2b3b", "soap6"], help="candidates measured")
    parser.add_argument("--cost-ps", type=float, default=10.0, help="MD of each candidate's cost run, ps")
    parser.add_argument("--t-min", type=float, default=60.0)
    parser.add_argument("--t-max", type=float, default=330.0)
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument("--ps", type=float, default=200.0, help="MD per temperature, ps")
    parser.add_argument("--skip-ps", type=float, default=10.0, help="equilibration dropped from each temperature, ps")
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--only-candidates", action="store_true", help="measure the candidates and stop")
    args = parser.parse_args()
    if not Path(args.start).is_file():
        print(f"na55_tempering: {args.start} is missing (the shared structures are not next to this clone; see --start)")
        return 1
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    start = work / "na55.xyz"
    if not start.exists():
        write(start, next(a for a in read(args.start, ":") if len(a) == 55))
    candidates = {name: candidate(work, name, start, args.t_max, args.cost_ps) for name in dict.fromkeys([*args.compare, args.model])}
    print(f"{'candidate':10} {'E meV/atom':>10} {'F eV/A':>8} {'ms/step':>8}  cost run at {args.t_max:g} K")
    for name, c in candidates.items():
        ms = f"{c['cpu_ms_per_md_step']:.2f}" if c["cpu_ms_per_md_step"] else "-"
        print(f"{name:10} {c['held_out_na55_energy_rmse_meV_per_atom']:10.2f} {c['held_out_na55_force_rmse_eV_per_A']:8.3f} {ms:>8}  "
              f"{c['cost_run_status']} after {c['cost_run_steps']} steps")  # fmt: skip
    (work / "candidates.json").write_text(json.dumps(candidates, indent=1) + "\n")
    if args.only_candidates:
        return 0
    model = work / f"model_{args.model}.cfm"
    if not model.exists():
        cli("train", "--kind", "gap", "dataset:na", *CANDIDATES[args.model][1], "-o", str(model), "--quiet")
    temps = [f"{t:.1f}" for t in args.t_min * (args.t_max / args.t_min) ** (np.arange(args.replicas) / (args.replicas - 1))]
    steps = int(round(args.ps * 1000 / TIMESTEP_FS / EXCHANGE_EVERY)) * EXCHANGE_EVERY
    out = work / f"replicas_{args.model}"
    cli("md", str(model), str(start), "--temperatures", *temps, "--steps", str(steps), *LANGEVIN, "--checkpoint-every", "1000",
        "--exchange", str(EXCHANGE_EVERY), "--ranks", str(args.ranks), "-o", str(out), "--quiet")  # fmt: skip
    skip = int(round(args.skip_ps * 1000 / TIMESTEP_FS / SAMPLE_EVERY))
    result = analyse(out, work, "na55_pt", skip)
    state = json.loads((out / "tempering_state.json").read_text())
    half = analyse(out, work, "na55_pt_second_half", state["step"] // SAMPLE_EVERY // 2)
    cpu = float(state["cpu_seconds"])
    result.update(
        model=CANDIDATES[args.model][0],
        model_choice=args.model,
        candidates=candidates,
        md=f"LAMMPS parallel tempering, Langevin 1 ps, 2 fs, swaps every {EXCHANGE_EVERY * TIMESTEP_FS / 1000:g} ps, {args.ranks} rank(s)",
        ps_per_temperature=state["step"] * TIMESTEP_FS / 1000.0,
        equilibration_dropped_ps=args.skip_ps,
        cpu_seconds_total=cpu,
        cpu_ms_per_replica_step=1000.0 * cpu / (state["step"] * len(temps)),
        swap_acceptance=[
            {"T_i_K": float(temps[i]), "T_j_K": float(temps[i + 1]), "attempts": n, "accepted": a, "rate": a / max(n, 1)}
            for i, (a, n) in enumerate(zip(state["accepted"], state["attempts"]))
        ],
        second_half={
            k: half[k] for k in ("interior_peak_K", "interior_peak_K_spread", "local_maxima", "cv_over_c0_ends", "peak_clear_of_ends")
        },
        reference_melting_K={"gap_sodium_paper_Na55": 281, "gap_sodium_paper_Na147": 271, "experiment_Na55": 290, "experiment_Na147": 272},
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "na55_pt.json").write_text(json.dumps(result, indent=1) + "\n")
    shutil.copy(work / "na55_pt.png", RESULTS / "na55_pt.png")
    print(f"{result['ps_per_temperature']:g} ps per temperature, {cpu:.0f} CPU s ({result['cpu_ms_per_replica_step']:.2f} ms/replica-step)")
    print("swap acceptance: " + " ".join(f"{s['rate']:.2f}" for s in result["swap_acceptance"]))
    for m in result["local_maxima"]:
        print(f"local maximum {m['T_K']:.1f} K: C_v/C_0 {m['cv_over_c0']:.3f} +- {m['err']:.3f}")
    print(f"highest interior maximum {result['interior_peak_K']} K +- {result['interior_peak_K_spread']} K; ends "
          + ", ".join(f"{v['T_K']:.0f} K {v['cv_over_c0']:.3f} +- {v['err']:.3f}" for v in result["cv_over_c0_ends"].values())
          + f"; clear of both ends: {result['peak_clear_of_ends']}; second half alone: {half['interior_peak_K']} K")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
