"""Reading reference frames and their reference energies and forces.

Frames are :class:`ase.Atoms`. Positions are in Angstrom, energies in eV and forces in
eV/Angstrom. Reference values are looked up in this order (first hit wins):

energy
    ``info["REF_energy"]``, ``info["DFT_energy"]``, the attached calculator's stored
    ``"energy"`` (where ``ase.io`` puts an extended-XYZ ``energy=``), ``info["energy"]``.
forces
    ``arrays["REF_forces"]``, ``arrays["DFT_forces"]``, the attached calculator's stored
    ``"forces"``, ``arrays["forces"]``.

The explicit ``REF_``/``DFT_`` keys come first because files that carry them often also carry
a model's prediction under the plain name. A calculator is never asked to compute anything:
only results it already holds for the frame's current geometry count.
"""

from __future__ import annotations

import gzip
import io
import logging
import operator
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms
from ase.io.formats import filetype, string2index

logger = logging.getLogger(__name__)

#: ``info`` keys checked for a reference energy before and after the calculator, in order.
ENERGY_KEYS_BEFORE_CALC: tuple[str, ...] = ("REF_energy", "DFT_energy")
ENERGY_KEYS_AFTER_CALC: tuple[str, ...] = ("energy",)
#: ``arrays`` keys checked for reference forces before and after the calculator, in order.
FORCES_KEYS_BEFORE_CALC: tuple[str, ...] = ("REF_forces", "DFT_forces")
FORCES_KEYS_AFTER_CALC: tuple[str, ...] = ("forces",)


class DataError(ValueError):
    """Input data that cannot be used; the message names the file, frame and field."""


#: Prefix that names a shipped data set instead of a file, e.g. ``dataset:rings``.
DATASET_PREFIX = "dataset:"
#: Where the shipped data sets live (the :mod:`clusterforce.data.datasets` package directory).
DATASETS_DIR: Path = Path(__file__).resolve().parent / "datasets"
DATASET_SUFFIX = ".extxyz.gz"


def dataset_names() -> list[str]:
    """Names of the data sets shipped in this installation, sorted."""
    return sorted(p.name[: -len(DATASET_SUFFIX)] for p in DATASETS_DIR.glob(f"*{DATASET_SUFFIX}"))


def dataset_path(name: str) -> Path:
    """Path of the data file of shipped data set ``name``.

    Raises
    ------
    DataError
        If no data set of that name is shipped; the message lists the available ones.
    """
    names = dataset_names()
    if name not in names:
        listing = ", ".join(names) if names else f"none (no *{DATASET_SUFFIX} files in {DATASETS_DIR})"
        raise DataError(f"unknown dataset {name!r}; available: {listing}")
    return DATASETS_DIR / f"{name}{DATASET_SUFFIX}"


def read_frames(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    index: str | int | slice = ":",
    *,
    format: str | None = None,
) -> list[Atoms]:
    """Read frames from one or more files in any format :func:`ase.io.read` understands.

    Parameters
    ----------
    paths
        One path or a sequence of paths (extended XYZ, XYZ, ASE trajectory, ``.gz`` ...).
        ``dataset:NAME`` names a data set shipped with the package (see
        :mod:`clusterforce.data.datasets`).
    index
        Which frames of each file, in ASE syntax (``":"``, ``"-1"``, ``"::10"``, ``3``).
    format
        ASE format name, when the file extension does not tell it.

    Returns
    -------
    list of ase.Atoms
        Every frame has ``info["source_file"]`` (the path as given) and
        ``info["source_index"]`` (0-based position of the frame in that file).

    Raises
    ------
    DataError
        If a file is missing, unreadable, cannot be parsed or yields no frames.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise DataError("no input files given: pass at least one path to read frames from")
    selection = string2index(index) if isinstance(index, str) else index
    if not isinstance(selection, slice):
        selection = operator.index(selection)
    frames: list[Atoms] = []
    for path in paths:
        if str(path).startswith(DATASET_PREFIX):
            path = dataset_path(str(path)[len(DATASET_PREFIX) :])
        file_frames = _read_file(str(path), selection, format)
        logger.info("read %d frames from %s", len(file_frames), path)
        frames.extend(file_frames)
    return frames


def _decompressed(path: str, format: str | None) -> tuple[str | io.StringIO, str | None]:
    """``(source, format)`` for ase.io.read; gzip text is decompressed into memory first,
    because ase.io seeks backwards in a gzip stream and reading becomes quadratic in the
    number of frames (the shipped ``na`` set: 5.6 s instead of 0.2 s)."""
    if not path.endswith(".gz"):
        return path, format
    format = format or filetype(path, read=False)
    if format in ("traj", "bundletrajectory"):  # binary formats keep their own reader
        return path, format
    with gzip.open(path, "rt") as fh:
        return io.StringIO(fh.read()), format


def _read_file(path: str, selection: int | slice, format: str | None) -> list[Atoms]:
    if not Path(path).exists():
        raise DataError(f"{path}: file not found; check the path and the working directory")
    # Reading only the selected frames is cheap when the selection counts from the start;
    # negative indices need the frame count, so those read the whole file and select here.
    if isinstance(selection, int):
        from_start = selection >= 0
    else:
        from_start = all(v is None or v >= 0 for v in (selection.start, selection.stop)) and (selection.step is None or selection.step > 0)
    try:
        source, format = _decompressed(path, format)
        read = ase.io.read(source, index=selection if from_start else ":", format=format)
    except StopIteration:  # ase.io's way of saying an integer index is past the end
        raise DataError(f"{path}: frame index {selection} is out of range; check the index") from None
    except PermissionError as exc:
        raise DataError(f"{path}: could not read the file: {exc.strerror}; check its permissions") from None
    except Exception as exc:  # ase.io raises many unrelated types for malformed input
        raise DataError(
            f"{path}: could not parse: {type(exc).__name__}: {exc}; check the file is complete and in a "
            "format ase.io.read understands (pass the format if the extension is unusual)"
        ) from None
    read = read if isinstance(read, list) else [read]
    if from_start:
        start, step = (selection, 1) if isinstance(selection, int) else (selection.start or 0, selection.step or 1)
        pairs = list(zip(range(start, start + step * len(read), step), read))
    else:
        try:
            chosen = list(range(len(read)))[selection]
        except IndexError:
            raise DataError(f"{path}: frame index {selection} is out of range for {len(read)} frames; check the index") from None
        pairs = [(i, read[i]) for i in (chosen if isinstance(chosen, list) else [chosen])]
    if not pairs:
        raise DataError(f"{path}: no frames found (the file is empty or the index selects nothing)")
    for position, atoms in pairs:
        atoms.info["source_file"] = path
        atoms.info["source_index"] = int(position)
    return [atoms for _, atoms in pairs]


def frame_label(atoms: Atoms, position: int | None = None) -> str:
    """Name a frame for error messages: ``"train.extxyz, frame 12"``.

    Uses ``info["source_file"]``/``info["source_index"]`` set by :func:`read_frames`; without
    them falls back to ``position`` (the frame's place in the caller's list).
    """
    if "source_file" in atoms.info and "source_index" in atoms.info:
        return f"{atoms.info['source_file']}, frame {atoms.info['source_index']}"
    return f"frame {position}" if position is not None else "frame (unknown source)"


def _stored_calc_result(atoms: Atoms, name: str) -> Any:
    calc = atoms.calc
    results = getattr(calc, "results", None)
    if not results or name not in results:
        return None
    check_state = getattr(calc, "check_state", None)
    if check_state is not None and check_state(atoms):
        return None  # the geometry changed since the result was stored
    return results[name]


def _lookup(atoms: Atoms, store: dict, before: Sequence[str], calc_name: str, after: Sequence[str]) -> Any:
    for key in before:
        if key in store:
            return store[key]
    value = _stored_calc_result(atoms, calc_name)
    if value is not None:
        return value
    for key in after:
        if key in store:
            return store[key]
    return None


def _energy_sources() -> str:
    keys = [f"info['{k}']" for k in ENERGY_KEYS_BEFORE_CALC + ENERGY_KEYS_AFTER_CALC]
    return ", ".join(keys) + " and the attached calculator"


def _forces_sources() -> str:
    keys = [f"arrays['{k}']" for k in FORCES_KEYS_BEFORE_CALC + FORCES_KEYS_AFTER_CALC]
    return ", ".join(keys) + " and the attached calculator"


def charge_of(atoms: Atoms) -> float:
    """Total charge of a structure in e: ``info['charge']`` (ASE's convention), 0 if not set."""
    return float(atoms.info.get("charge", 0))


def get_energy(atoms: Atoms) -> float | None:
    """Reference total energy of a frame in eV, or None if the frame has none.

    See the module docstring for where it is looked up.

    Raises
    ------
    DataError
        If a stored energy is not a number.
    """
    value = _lookup(atoms, atoms.info, ENERGY_KEYS_BEFORE_CALC, "energy", ENERGY_KEYS_AFTER_CALC)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{frame_label(atoms)}: energy {value!r} is not a number; fix the energy field") from None


def get_forces(atoms: Atoms) -> np.ndarray | None:
    """Reference forces of a frame in eV/Angstrom (a fresh float64 array), or None.

    The shape is returned as stored; :func:`validate_frames` checks it is ``(n_atoms, 3)``.

    Raises
    ------
    DataError
        If stored forces are not numeric.
    """
    value = _lookup(atoms, atoms.arrays, FORCES_KEYS_BEFORE_CALC, "forces", FORCES_KEYS_AFTER_CALC)
    if value is None:
        return None
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{frame_label(atoms)}: forces are not numeric; fix the forces field") from None
