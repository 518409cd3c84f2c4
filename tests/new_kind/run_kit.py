"""The test kind ``morse`` through the whole contract, in a fresh process (tests/test_new_kind.py).

Run with PYTHONPATH = a copy of the clusterforce package whose ``_kernels`` and LAMMPS plugin were
built with ``-DCLUSTERFORCE_EXTRA_KINDS=tests/new_kind/morse.hpp``, beside the ``morse_kind``
package and its ``clusterforce.kinds`` entry point; then ``tests/``. Fits the kind on EMT Cu-Ag
clusters, runs every check of the conformance kit (ASE, LAMMPS serial and on two ranks,
pickling and save/load included) and ``clusterforce train --kind morse``; prints one JSON line
and exits 1 on the first failure.

    python run_kit.py WORKDIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from _frames import _label, rattled_icosahedron
from ase.calculators.emt import EMT
from ase.io import write

#: Where Ag replaces Cu in the icosahedra: two species, so element pairs are told apart.
AG_SITES = (0, 4, 9)
SUBSTITUTE = {47: AG_SITES}


def cu_ag_frames(n: int, seed: int) -> list:
    """``n`` rattled (0.12 Angstrom) Cu12Ag, Cu11Ag2 and Cu10Ag3 icosahedra in turn (several compositions
    fix both e0), with EMT energies (eV) and forces (eV/Angstrom)."""
    return [_label(rattled_icosahedron(seed + k, "Cu", substitute={47: AG_SITES[: 1 + k % 3]}, amplitude=0.12), EMT()) for k in range(n)]


def main(workdir: Path) -> dict:
    from clusterforce import _kernels, testing
    from clusterforce.cli import main as cli
    from clusterforce.core import registry
    from morse_kind import MorseModel

    assert "morse" in _kernels.registered_kinds(), f"the extension was built without the kind: {_kernels.registered_kinds()}"
    assert registry.KINDS.get("morse") == "morse_kind.kind", "the clusterforce.kinds entry point did not register morse"
    why = testing.lammps_available()
    assert why is None, f"LAMMPS checks cannot run: {why}"

    started = time.perf_counter()
    frames = cu_ag_frames(12, seed=0)
    model = MorseModel().fit(frames)
    held_out = cu_ag_frames(4, seed=100)
    errors = [np.abs(model.predict(a)["forces"] - a.get_forces()).max() for a in held_out]
    report = {"fit_s": time.perf_counter() - started, "max_force_error_held_out": float(max(errors))}

    probe = rattled_icosahedron(7, "Cu", substitute=SUBSTITUTE, amplitude=0.1)
    assert testing.not_applicable(model) == {}, f"every check applies to a local energy kind: {testing.not_applicable(model)}"
    report["checks"] = {}
    for name in testing.CHECKS:
        started = time.perf_counter()
        checkdir = workdir / name
        checkdir.mkdir()
        testing.run_check(name, model, probe, checkdir)
        report["checks"][name] = round(time.perf_counter() - started, 3)

    data = workdir / "train.extxyz"
    write(data, frames)
    out = workdir / "cli.cfm"
    code = cli(["train", "--kind", "morse", "--r-cut", "4.5", "--quiet", str(data), "-o", str(out), "--valid-fraction", "0.25"])
    assert code == 0, f"clusterforce train --kind morse exited {code}"
    again = registry.load_model(out)
    assert type(again).__name__ == "MorseModel" and again.r_cut == 4.5, again
    report["cli"] = "ok"
    return report


if __name__ == "__main__":
    workdir = Path(sys.argv[1])
    workdir.mkdir(parents=True, exist_ok=True)
    print(json.dumps(main(workdir)))
