"""Checks on reference frames before training: every problem found, each naming file, frame and field."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from clusterforce.data.io import DataError, _energy_sources, _forces_sources, frame_label, get_energy, get_forces
from clusterforce.descriptors.neighbors import neighbor_list_atoms

#: How many problems :func:`validate_frames` spells out before summarising the rest.
MAX_REPORTED_PROBLEMS = 10
#: How many too-close atom pairs are spelled out per frame.
MAX_REPORTED_PAIRS = 3


def validate_frames(
    frames: Sequence[Atoms],
    *,
    need_energy: bool,
    need_forces: bool,
    min_distance: float = 0.5,
    hint: str | None = None,
) -> None:
    """Check frames before training; report every problem found, the first few in detail.

    Each frame must have finite positions, no two atoms (or an atom and a periodic image,
    minimum image and beyond) closer than ``min_distance``, a usable cell if periodic, and,
    when asked for, a finite energy (eV) and finite forces of shape ``(n_atoms, 3)``
    (eV/Angstrom).

    Parameters
    ----------
    frames
        Frames as returned by :func:`read_frames`.
    need_energy, need_forces
        Whether every frame must carry a reference energy / forces.
    min_distance
        Smallest allowed interatomic distance in Angstrom.
    hint
        What to do about a missing energy or forces, e.g.
        ``"this model kind trains on forces — add them or use --kind gap with energies"``;
        replaces the generic advice.

    Raises
    ------
    DataError
        Listing up to :data:`MAX_REPORTED_PROBLEMS` problems, each naming file, frame and field,
        and how many more were found.
    """
    if not (isinstance(min_distance, (int, float)) and math.isfinite(min_distance) and min_distance >= 0):
        raise ValueError(f"min_distance must be a finite number >= 0 Angstrom, got {min_distance!r}")
    if len(frames) == 0:
        raise DataError("no frames to validate: the data set is empty")
    problems: list[str] = []
    bad_frames = 0
    for position, atoms in enumerate(frames):
        if not isinstance(atoms, Atoms):
            raise TypeError(f"frame {position} is a {type(atoms).__name__}, expected ase.Atoms")
        found = _frame_problems(atoms, need_energy, need_forces, min_distance, hint)
        if found:
            label = frame_label(atoms, position)
            problems.extend(f"{label}: {p}" for p in found)
            bad_frames += 1
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        text = f"{len(problems)} problem(s) in {bad_frames} of {len(frames)} frames:\n  " + "\n  ".join(shown)
        if len(problems) > len(shown):
            text += f"\n  ... and {len(problems) - len(shown)} more"
        raise DataError(text)


def check_structure(atoms: Atoms, label: str, *, min_distance: float = 0.5) -> None:
    """Check a structure a workflow starts from (optimise, search, MD): atoms present, every
    position finite and no two atoms closer than ``min_distance`` (Angstrom).

    Raises
    ------
    DataError
        One line starting with ``label`` (e.g. the file name) that names the atoms.
    """
    problems = _frame_problems(atoms, False, False, min_distance, None)
    if problems:
        raise DataError(f"{label}: " + "; ".join(problems))


def read_structure(path: str, index: str | int = -1, *, min_distance: float = 0.5) -> Atoms:
    """Frame ``index`` (ASE index syntax, default the last) of the file ``path``, checked by
    :func:`check_structure`: the command-line boundary of every workflow.

    Raises
    ------
    DataError
        A missing or unreadable file, or a structure that cannot be simulated; one line naming
        the file (and the frame, when not the last) and the atoms.
    """
    from ase.io import read

    if not Path(path).is_file():
        raise DataError(f"{path}: no such file")
    try:
        atoms = read(path, index=index)
    except Exception as exc:  # ASE raises many types for unreadable files
        raise DataError(f"{path}: cannot read a structure ({type(exc).__name__}: {exc})") from None
    if not isinstance(atoms, Atoms):
        raise DataError(f"{path}: index {index!r} selects {len(atoms)} frames; give one frame")
    check_structure(atoms, path if str(index) == "-1" else f"{path}, frame {index}", min_distance=min_distance)
    return atoms


def _frame_problems(atoms: Atoms, need_energy: bool, need_forces: bool, min_distance: float, hint: str | None) -> list[str]:
    problems: list[str] = []
    n = len(atoms)
    if n == 0:
        return ["frame has no atoms; remove it"]
    positions = atoms.get_positions()
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        problems.append(f"positions are not finite for atoms {_list(bad)}; fix or remove the frame")
    else:
        problems.extend(_distance_problems(atoms, min_distance))

    if need_energy:
        energy = get_energy(atoms)
        if energy is None:
            problems.append(f"no energy found (looked in {_energy_sources()}); {hint or 'add a total energy in eV'}")
        elif not math.isfinite(energy):
            problems.append(f"energy is {energy}; fix or remove the frame")
    if need_forces:
        forces = get_forces(atoms)
        if forces is None:
            problems.append(f"no forces found (looked in {_forces_sources()}); {hint or 'add forces in eV/Angstrom'}")
        elif forces.shape != (n, 3):
            problems.append(f"forces have shape {forces.shape}, expected ({n}, 3) for {n} atoms; fix the forces field")
        else:
            bad = np.flatnonzero(~np.isfinite(forces).all(axis=1))
            if bad.size:
                problems.append(f"forces are not finite for atoms {_list(bad)}; fix or remove the frame")
    return problems


def _distance_problems(atoms: Atoms, min_distance: float) -> list[str]:
    if min_distance == 0:
        return []
    advice = "check the length unit (Angstrom, not Bohr or nm) and for duplicated atoms, or lower min_distance"
    if atoms.pbc.any():
        cell = atoms.cell.complete()
        if abs(np.linalg.det(cell)) < 1e-12:
            return [f"cell {atoms.cell.tolist()} is singular but pbc={atoms.pbc.tolist()}; fix the cell or pbc"]
        spacing = 1.0 / np.linalg.norm(np.linalg.inv(cell).T, axis=1)
        thin = [k for k in range(3) if atoms.pbc[k] and spacing[k] < min_distance]
        if thin:
            return [
                f"periodic cell is only {spacing[thin[0]]:.3g} Angstrom thick along axis {thin[0]}, so every atom "
                f"is closer than {min_distance} Angstrom to its own image; fix the cell or pbc"
            ]
    i, j, d = close_pairs(atoms, min_distance)
    if not len(d):
        return []
    shown = ", ".join(f"atoms {i[k]} and {j[k]} at {d[k]:.3f}" for k in range(min(len(d), MAX_REPORTED_PAIRS)))
    more = f" (+{len(d) - MAX_REPORTED_PAIRS} more pairs)" if len(d) > MAX_REPORTED_PAIRS else ""
    return [f"atoms closer than min_distance={min_distance} Angstrom: {shown} Angstrom{more}; {advice}"]


def close_pairs(atoms: Atoms, min_distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` of atoms (periodic images included) closer than ``min_distance`` (Angstrom),
    closest first: indices ``i``, ``j`` and distances ``d``."""
    nl = neighbor_list_atoms(atoms, min_distance)
    keep = nl.i < nl.j
    i, j, d = nl.i[keep], nl.j[keep], nl.d[keep]
    order = np.argsort(d, kind="stable")
    return i[order], j[order], d[order]


def _list(indices: np.ndarray, limit: int = 5) -> str:
    text = ", ".join(str(int(k)) for k in indices[:limit])
    return text + (f" (+{len(indices) - limit} more)" if len(indices) > limit else "")


def species_indices(atoms: Atoms, elements: Sequence[str], *, label: str | None = None) -> np.ndarray:
    """Index of each atom's element in ``elements`` (the elements a model was trained on).

    The one place every model kind checks the species of its input, so the message is the
    same whichever kind, front end (Python, ASE) or structure is used.

    Parameters
    ----------
    atoms
        The structure to predict.
    elements
        Chemical symbols the model knows, in the order of its species channels.
    label
        Where the structure comes from (e.g. :func:`~clusterforce.data.frame_label`), to
        start the message with.

    Returns
    -------
    ndarray of int32, shape (n_atoms,)

    Raises
    ------
    ValueError
        Naming the first atom of an unknown element (index and symbol), the known elements
        and what to do.
    """
    lookup = {symbol: k for k, symbol in enumerate(elements)}
    symbols = atoms.get_chemical_symbols()
    out = np.empty(len(symbols), dtype=np.int32)
    for index, symbol in enumerate(symbols):
        if symbol not in lookup:
            where = f"{label}: " if label else ""
            raise ValueError(
                f"{where}atom {index} is {symbol}, an element this model was not trained on "
                f"(it knows {', '.join(sorted(lookup))}); retrain with data containing {symbol}"
            )
        out[index] = lookup[symbol]
    return out
