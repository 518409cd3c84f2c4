"""Reading, checking, splitting, scaling and fingerprinting reference data.

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
import hashlib
import io
import logging
import math
import operator
import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from ase import Atoms
from ase.io.formats import filetype, string2index
from ase.neighborlist import neighbor_list
from scipy.spatial import cKDTree
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

logger = logging.getLogger(__name__)

#: ``info`` keys checked for a reference energy before and after the calculator, in order.
ENERGY_KEYS_BEFORE_CALC: tuple[str, ...] = ("REF_energy", "DFT_energy")
ENERGY_KEYS_AFTER_CALC: tuple[str, ...] = ("energy",)
#: ``arrays`` keys checked for reference forces before and after the calculator, in order.
FORCES_KEYS_BEFORE_CALC: tuple[str, ...] = ("REF_forces", "DFT_forces")
FORCES_KEYS_AFTER_CALC: tuple[str, ...] = ("forces",)

#: How many problems :func:`validate_frames` spells out before summarising the rest.
MAX_REPORTED_PROBLEMS = 10
#: How many too-close atom pairs are spelled out per frame.
MAX_REPORTED_PAIRS = 3


class DataError(ValueError):
    """Input data that cannot be used; the message names the file, frame and field."""


# --------------------------------------------------------------------------- reading


#: Prefix that names a shipped data set instead of a file, e.g. ``dataset:rings``.
DATASET_PREFIX = "dataset:"


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
        :mod:`clusterforce.datasets`).
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
            from . import datasets

            path = datasets.path(str(path)[len(DATASET_PREFIX) :])
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
        from_start = all(v is None or v >= 0 for v in (selection.start, selection.stop)) and (
            selection.step is None or selection.step > 0
        )
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
            raise DataError(
                f"{path}: frame index {selection} is out of range for {len(read)} frames; check the index"
            ) from None
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


# --------------------------------------------------------------------------- reference values


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


# --------------------------------------------------------------------------- validation


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


def _frame_problems(
    atoms: Atoms, need_energy: bool, need_forces: bool, min_distance: float, hint: str | None
) -> list[str]:
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
            problems.append(
                f"no forces found (looked in {_forces_sources()}); {hint or 'add forces in eV/Angstrom'}"
            )
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
        i, j, d = neighbor_list("ijd", atoms, min_distance)
        keep = (i < j) & (d < min_distance)
        i, j, d = i[keep], j[keep], d[keep]
    else:
        pairs = cKDTree(atoms.positions).query_pairs(min_distance, output_type="ndarray")
        i, j = pairs[:, 0], pairs[:, 1]
        d = np.linalg.norm(atoms.positions[i] - atoms.positions[j], axis=1)
        keep = d < min_distance
        i, j, d = i[keep], j[keep], d[keep]
    if not len(d):
        return []
    order = np.argsort(d, kind="stable")
    shown = ", ".join(f"atoms {i[k]} and {j[k]} at {d[k]:.3f}" for k in order[:MAX_REPORTED_PAIRS])
    more = f" (+{len(d) - MAX_REPORTED_PAIRS} more pairs)" if len(d) > MAX_REPORTED_PAIRS else ""
    return [f"atoms closer than min_distance={min_distance} Angstrom: {shown} Angstrom{more}; {advice}"]


def _list(indices: np.ndarray, limit: int = 5) -> str:
    text = ", ".join(str(int(k)) for k in indices[:limit])
    return text + (f" (+{len(indices) - limit} more)" if len(indices) > limit else "")


# --------------------------------------------------------------------------- splitting


def train_test_split_frames(
    frames: Sequence[Atoms], *, test_size: float | int = 0.2, seed: int = 0
) -> tuple[list[Atoms], list[Atoms]]:
    """Split frames at random into train and test sets, reproducibly.

    Parameters
    ----------
    frames
        Frames to split.
    test_size
        Fraction of frames in (0, 1) (rounded up, as in scikit-learn) or a number of frames.
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed and frames give the same split.

    Returns
    -------
    (train, test)
        Lists of frames, each in the original order.
    """
    n = len(frames)
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        n_test = int(test_size)
    elif isinstance(test_size, (float, np.floating)) and 0.0 < test_size < 1.0:
        n_test = math.ceil(float(test_size) * n)
    else:
        raise ValueError(f"test_size must be a fraction in (0, 1) or a number of frames, got {test_size!r}")
    if not 0 < n_test < n:
        raise DataError(
            f"cannot split {n} frames with test_size={test_size!r}: that leaves {n - n_test} training and "
            f"{n_test} test frames; both need at least one (use more frames or another test_size)"
        )
    test_idx = np.sort(np.random.default_rng(seed).permutation(n)[:n_test])
    is_test = np.zeros(n, dtype=bool)
    is_test[test_idx] = True
    logger.info("split %d frames into %d train and %d test (seed %d)", n, n - n_test, n_test, seed)
    return _partition(frames, is_test)


def by_size(atoms: Atoms) -> int:
    """Group key for :func:`group_split`: the number of atoms."""
    return len(atoms)


def group_split(
    frames: Sequence[Atoms],
    *,
    group: str | Callable[[Atoms], Hashable],
    test_groups: Iterable[Hashable],
) -> tuple[list[Atoms], list[Atoms]]:
    """Split frames by group, e.g. hold out all clusters of one size.

    Parameters
    ----------
    frames
        Frames to split.
    group
        An ``info`` key (e.g. ``"system"``) or a callable mapping a frame to a hashable group
        value (e.g. :func:`by_size`).
    test_groups
        Group values whose frames go to the test set; every one must occur.

    Returns
    -------
    (train, test)
        Lists of frames, each in the original order.
    """
    test_groups = list(test_groups)
    if not test_groups:
        raise ValueError("test_groups is empty: name at least one group to hold out")
    keys = [_group_of(atoms, position, group) for position, atoms in enumerate(frames)]
    available = set(keys)
    unknown = [g for g in test_groups if g not in available]
    if unknown:
        raise ValueError(f"unknown test group(s) {unknown}; the frames have groups {_sorted(available)}")
    wanted = set(test_groups)
    is_test = np.array([k in wanted for k in keys], dtype=bool)
    if is_test.all():
        raise DataError(
            f"test_groups {test_groups} contain every frame, so nothing is left to train on; "
            f"hold out fewer of the groups {_sorted(available)}"
        )
    return _partition(frames, is_test)


def _group_of(atoms: Atoms, position: int, group: str | Callable[[Atoms], Hashable]) -> Hashable:
    if isinstance(group, str):
        if group not in atoms.info:
            raise DataError(
                f"{frame_label(atoms, position)}: no info['{group}'] to group by; add it to every frame "
                "or group by a function such as by_size"
            )
        key = atoms.info[group]
    else:
        key = group(atoms)
    try:
        hash(key)
    except TypeError:
        raise DataError(
            f"{frame_label(atoms, position)}: group value of type {type(key).__name__} is not hashable; "
            "group by a scalar or a string"
        ) from None
    return key


def _sorted(values: Iterable[Hashable]) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _partition(frames: Sequence[Atoms], is_test: np.ndarray) -> tuple[list[Atoms], list[Atoms]]:
    train = [f for f, t in zip(frames, is_test) if not t]
    test = [f for f, t in zip(frames, is_test) if t]
    return train, test


# --------------------------------------------------------------------------- scaling


class MinMaxScaler(BaseEstimator):
    """Scale each feature to [0, 1] by the training minimum and maximum.

    ``transform(X) = (X - data_min_) * scale_`` with ``scale_ = 1 / (data_max_ - data_min_)``.
    A feature that is constant in the training data gets ``scale_ = 1`` (as in scikit-learn),
    so it maps to 0 without a division by zero and ``inverse_transform`` stays exact.
    Values outside the training range map outside [0, 1]; they are not clipped.

    Attributes
    ----------
    data_min_, data_max_ : ndarray of shape (n_features,)
        Per-feature minimum and maximum seen in ``fit``.
    scale_ : ndarray of shape (n_features,)
        Per-feature multiplier.
    n_features_in_ : int
        Number of features seen in ``fit``.
    """

    def fit(self, X: np.ndarray, y: None = None) -> MinMaxScaler:
        """Learn the per-feature minimum and maximum of ``X`` (n_samples, n_features)."""
        X = self._check_array(X, "fit")
        if X.shape[0] == 0:
            raise ValueError("MinMaxScaler.fit: X has 0 samples; need at least one row")
        self.data_min_ = X.min(axis=0)
        self.data_max_ = X.max(axis=0)
        self.scale_ = _scale_from_range(self.data_max_ - self.data_min_)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scale ``X`` (n_samples, n_features) into the fitted range; returns a new array."""
        check_is_fitted(self)
        X = self._check_array(X, "transform")
        return (X - self.data_min_) * self.scale_

    def fit_transform(self, X: np.ndarray, y: None = None) -> np.ndarray:
        """Fit to ``X`` and return it scaled."""
        return self.fit(X).transform(X)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`; returns a new array."""
        check_is_fitted(self)
        X = self._check_array(X, "inverse_transform")
        return X / self.scale_ + self.data_min_

    def state_dict(self) -> dict[str, np.ndarray]:
        """Fitted state as float64 arrays, for storing in a model file."""
        check_is_fitted(self)
        return {
            "data_min": self.data_min_.copy(),
            "data_max": self.data_max_.copy(),
            "scale": self.scale_.copy(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> MinMaxScaler:
        """Rebuild a fitted scaler from :meth:`state_dict` output."""
        missing = [k for k in ("data_min", "data_max", "scale") if k not in state]
        if missing:
            raise ValueError(f"MinMaxScaler state is missing {missing}; it has keys {sorted(state)}")
        arrays = {k: np.asarray(state[k], dtype=np.float64) for k in ("data_min", "data_max", "scale")}
        shapes = {k: a.shape for k, a in arrays.items()}
        if len(set(shapes.values())) != 1 or arrays["data_min"].ndim != 1:
            raise ValueError(f"MinMaxScaler state arrays must be 1-D and of equal length, got shapes {shapes}")
        for key, a in arrays.items():
            if not np.isfinite(a).all():
                raise ValueError(f"MinMaxScaler state '{key}' contains non-finite values")
        if not np.allclose(arrays["scale"], _scale_from_range(arrays["data_max"] - arrays["data_min"])):
            raise ValueError("MinMaxScaler state 'scale' does not match 1 / (data_max - data_min)")
        scaler = cls()
        scaler.data_min_ = arrays["data_min"].copy()
        scaler.data_max_ = arrays["data_max"].copy()
        scaler.scale_ = arrays["scale"].copy()
        scaler.n_features_in_ = arrays["data_min"].shape[0]
        return scaler

    def _check_array(self, X: np.ndarray, where: str) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"MinMaxScaler.{where}: X must be 2-D (n_samples, n_features), got shape {X.shape}")
        n_features = getattr(self, "n_features_in_", None)
        if where != "fit" and X.shape[1] != n_features:
            raise ValueError(
                f"MinMaxScaler.{where}: X has {X.shape[1]} features, the scaler was fitted on {n_features}"
            )
        if not np.isfinite(X).all():
            raise ValueError(f"MinMaxScaler.{where}: X contains NaN or infinite values")
        return X


def _scale_from_range(data_range: np.ndarray) -> np.ndarray:
    return 1.0 / np.where(data_range > 0, data_range, 1.0)


# --------------------------------------------------------------------------- fingerprint


def dataset_hash(frames: Iterable[Atoms]) -> str:
    """SHA-256 hex digest of a data set, identical across runs and machines.

    Covers, per frame and in order: atomic numbers, positions, cell, pbc, energy and forces
    (as little-endian int64/float64 bytes). ``info`` metadata such as the source file is not
    included, so the same data read from another path hashes the same.
    """
    digest = hashlib.sha256(b"clusterforce-dataset-v1")
    for atoms in frames:
        energy = get_energy(atoms)
        forces = get_forces(atoms)
        parts = [
            np.array([len(atoms)], dtype="<i8"),
            np.asarray(atoms.numbers, dtype="<i8"),
            np.asarray(atoms.positions, dtype="<f8"),
            np.asarray(atoms.cell[:], dtype="<f8"),
            np.asarray(atoms.pbc, dtype="u1"),
            np.array([0.0 if energy is None else energy, energy is not None], dtype="<f8"),
            np.array([forces is not None], dtype="u1"),
        ]
        if forces is not None:
            parts.append(np.array(forces.shape, dtype="<i8"))
            parts.append(forces.astype("<f8"))
        for part in parts:
            digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


__all__ = [
    "DataError",
    "MinMaxScaler",
    "by_size",
    "dataset_hash",
    "frame_label",
    "get_energy",
    "get_forces",
    "group_split",
    "read_frames",
    "train_test_split_frames",
    "validate_frames",
]
