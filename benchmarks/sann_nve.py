"""Energy conservation of sann models in LAMMPS NVE: one species (forces = -dE/dr) against an alloy
(the paper's decoupled forces, eq. 12, which are not the energy's gradient).

Both models are trained here on EMT data (rattled icosahedra, 13 and 55 atoms; Au, and Ag-Au with
40 % Ag), with the paper's descriptor and network and 3 Kalman epochs; the alloy's w_beta uses
effective nuclear charges given on the command line (defaults Ag 8.030, Au 10.940: recalled, not
checked against the Clementi-Raimondi-Reinhardt 1967 table, which is not on this machine; they
only set the ratio of the two elements' force weights). NVE of Au55 / Ag22Au33 from 300 K, 1 fs, ``--steps``.

    python benchmarks/sann_nve.py [--steps 5000] [--z-eff Ag=8.03 Au=10.94]

Writes benchmarks/results/sann_nve.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gap_nve import conservation, run_nve  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def frames(alloy: bool, count: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        atoms = Icosahedron("Au", 2 if k % 2 else 3)
        if alloy:
            atoms.numbers[rng.random(len(atoms)) < 0.4] = 47
        atoms.positions += rng.normal(0.0, 0.12, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_forces()
        out.append(atoms)
    return out


def main() -> int:
    from clusterforce.core.options import parse_assignments
    from clusterforce.kinds.sann import SANNModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--z-eff", nargs="+", default=["Ag=8.030", "Au=10.940"])
    parser.add_argument("-o", "--output", default=str(RESULTS / "sann_nve.json"))
    args = parser.parse_args()
    z_eff = parse_assignments(args.z_eff, usage="--z-eff expects EL=VALUE")
    result = {"steps": args.steps, "timestep_fs": 1.0, "temperature_K": 300.0, "z_eff": z_eff}
    with tempfile.TemporaryDirectory() as tmp:
        for name, alloy in (("Au55", False), ("Ag-Au55", True)):
            model = SANNModel(epochs=3, z_eff=z_eff if alloy else None, progress=False).fit(frames(alloy, args.frames, 0))
            path = Path(tmp) / f"{name}.cfm"
            model.save(path)
            start = next(a for a in frames(alloy, 4, 99) if len(a) == 55)
            etot = run_nve(str(path), start, args.steps, 1.0, 300.0)
            result[name] = {"composition": start.get_chemical_formula(), **conservation(etot, len(start), 1.0)}
            print(name, json.dumps(result[name]), flush=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
