"""Atom classes and alignment environments (OAMLM paper, section II C).

Every atom belongs to a *class*, which gets its own EMLM and OAMLM. For Au-S-C-H systems
(the *thiolate* chemistry) the classes are ``Au_core``, ``Au_unit`` (units and half units),
``S``, ``C`` and ``H``: an Au with two S within 3.0 Angstrom is a unit gold, one S and no Au
within 3.0 Angstrom a half unit, otherwise core. In every other system (the *generic*
chemistry: Na, Ga, bare Au, Ag-Au ...) the class is the element.

Each atom also gets an alignment record, built by the compiled core from its neighbours within
6.0 Angstrom (the same code the LAMMPS pair style runs), following one row of the scheme table
:data:`SCHEMES`:

``H``  nearest C, then the two other H on that C (2 orderings tried)
``C``  nearest S, then three nearest H (6 orderings)
``S``  nearest C, then two nearest Au (2 orderings)
``Au_unit``  two blocks (S within 3.0 A, the C on it, the other Au on it); 2 block orderings
``Au_half_unit``  one such block; aligned with unit gold over one common block (the half
    unit's block against each block of the unit), so both share the ``Au_unit`` model
``Au_core``  cloud of up to 12 neighbours: S within 3.0 A first, then Au within 5.0 A
``generic``  cloud of up to 12 neighbours of any element within 5.0 A
``Au_core_smooth``, ``generic_smooth``  the smooth form of the two cloud schemes (``smooth=True``):
    the 12 nearest within 6.0 A, weighted 1 up to 5.0 A and falling to 0 at 6.0 A and just before
    the 13th nearest, so atoms enter and leave the cloud with weight 0

Missing anchors never fail: when no atom of the wanted element is left, the nearest unused
atom of any element is taken (flag :data:`FLAG_SUBSTITUTED`); when no atom is left at all the
anchor sits on its origin (:data:`FLAG_MISSING`); an anchor farther than its bond length is
flagged :data:`FLAG_STRETCHED`; a cloud with fewer than two metal neighbours is topped up with
the nearest atoms within 6.0 A (:data:`FLAG_SPARSE_CLOUD`). Ties in distance are broken by
coordinates, so the records do not depend on the order of the neighbour list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from clusterforce import _kernels
from clusterforce.descriptors.neighbors import neighbor_list_atoms

logger = logging.getLogger(__name__)

#: The alignment scheme table compiled into the core (one dict per scheme id).
SCHEMES: tuple[dict, ...] = tuple(_kernels.alignment_schemes())
SCHEME_IDS: dict[str, int] = {s["name"]: s["id"] for s in SCHEMES}
MAX_ANCHORS: int = _kernels.MAX_ANCHORS
MAX_CLOUD: int = _kernels.MAX_CLOUD
#: Neighbours farther than this (Angstrom) are ignored when building environments.
ENVIRONMENT_CUTOFF: float = _kernels.ENVIRONMENT_CUTOFF

FLAG_STRETCHED = 1
FLAG_SUBSTITUTED = 2
FLAG_MISSING = 4
FLAG_SPARSE_CLOUD = 8

CHEMISTRIES: tuple[str, ...] = ("generic", "thiolate")
THIOLATE_ELEMENTS: frozenset[str] = frozenset({"Au", "S", "C", "H"})
#: Class order of the thiolate chemistry (generic classes are ordered by atomic number).
THIOLATE_CLASSES: tuple[str, ...] = ("Au_core", "Au_unit", "S", "C", "H")

_INT_FIELDS = ("scheme", "element", "n_cloud", "n_lead", "flags", "indices", "frame")
_FLOAT_FIELDS = {"anchors": (MAX_ANCHORS, 3), "cloud": (MAX_CLOUD, 3), "cloud_weight": (MAX_CLOUD,)}
_FIELDS = ("scheme", "element", "anchors", "cloud", "cloud_weight", "n_cloud", "n_lead", "flags", "indices", "frame")
_KERNEL_FIELDS = ("scheme", "element", "n_cloud", "n_lead", "flags", "anchors", "cloud", "cloud_weight")


def detect_chemistry(symbols: Iterable[str]) -> str:
    """``"thiolate"`` if the elements are a subset of Au, S, C, H and include S, else ``"generic"``.

    A model should fix its chemistry when it is trained (a bare Au cluster is generic, the
    same Au atoms inside a thiolate cluster are not), so pass ``chemistry=`` explicitly when
    classifying data for an existing model.
    """
    present = set(symbols)
    return "thiolate" if present <= THIOLATE_ELEMENTS and "S" in present else "generic"


def _chemistry_code(atoms: Atoms, chemistry: str | None) -> int:
    if chemistry is None:
        chemistry = detect_chemistry(atoms.get_chemical_symbols())
    if chemistry not in CHEMISTRIES:
        raise ValueError(f"chemistry must be one of {CHEMISTRIES}, got {chemistry!r}")
    return CHEMISTRIES.index(chemistry)


@dataclass(eq=False, repr=False)
class Environments:
    """Alignment records of a set of atoms (usually one class), as arrays.

    Attributes
    ----------
    scheme : (N,) int64
        Row of :data:`SCHEMES` used by each atom.
    element : (N,) int64
        Atomic number of the centre atom.
    anchors : (N, MAX_ANCHORS, 3) float64
        Anchor positions relative to the centre atom, Angstrom (anchor schemes; unused rows 0).
    cloud : (N, MAX_CLOUD, 3) float64
        Neighbour cloud relative to the centre atom, Angstrom (cloud schemes; unused rows 0).
    cloud_weight : (N, MAX_CLOUD) float64
        Weight in [0, 1] of each cloud entry in the smooth cloud schemes (``*_smooth``); 1 elsewhere
        (records stored before the smooth schemes load with 1).
    n_cloud, n_lead : (N,) int64
        Number of cloud entries, and how many of them (first) are lead (S) atoms.
    flags : (N,) int64
        Bitwise OR of the ``FLAG_*`` constants; 0 for a regular environment.
    indices, frame : (N,) int64
        Atom index within its structure and the structure's index in its data set.
    """

    scheme: np.ndarray
    element: np.ndarray
    anchors: np.ndarray
    cloud: np.ndarray
    cloud_weight: np.ndarray
    n_cloud: np.ndarray
    n_lead: np.ndarray
    flags: np.ndarray
    indices: np.ndarray
    frame: np.ndarray

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.int64))
        for name in _FLOAT_FIELDS:
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float64))
        n = len(self.scheme)
        for name in _INT_FIELDS:
            if getattr(self, name).shape != (n,):
                raise ValueError(f"Environments field '{name}' has shape {getattr(self, name).shape}, expected ({n},) like 'scheme'")
        for name, tail in _FLOAT_FIELDS.items():
            if getattr(self, name).shape != (n, *tail):
                raise ValueError(f"Environments field '{name}' has shape {getattr(self, name).shape}, expected {(n, *tail)}")
        if n and (self.scheme.min() < 0 or self.scheme.max() >= len(SCHEMES)):
            raise ValueError(f"Environments field 'scheme' holds ids outside [0, {len(SCHEMES)}): {sorted(set(self.scheme.tolist()))}")

    def __len__(self) -> int:
        return len(self.scheme)

    def __repr__(self) -> str:
        schemes = sorted({SCHEMES[s]["name"] for s in self.scheme.tolist()})
        return f"Environments(n={len(self)}, schemes={schemes}, flagged={self.n_flagged})"

    def __getitem__(self, key) -> Environments:
        """Subset by an index array, a boolean mask, a slice or a single integer."""
        if isinstance(key, (int, np.integer)):
            key = [key]
        return Environments(**{name: getattr(self, name)[key] for name in _FIELDS})

    @classmethod
    def empty(cls) -> Environments:
        """An Environments of length 0."""
        return cls(
            **{name: np.zeros(0, np.int64) for name in _INT_FIELDS},
            **{name: np.zeros((0, *tail)) for name, tail in _FLOAT_FIELDS.items()},
        )

    @classmethod
    def concatenate(cls, items: Sequence[Environments]) -> Environments:
        """Join several Environments end to end (an empty sequence gives an empty one)."""
        if not items:
            return cls.empty()
        return cls(**{name: np.concatenate([getattr(e, name) for e in items]) for name in _FIELDS})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fresh copies of every field as float64 / int64 arrays (for the model file)."""
        return {name: getattr(self, name).copy() for name in _FIELDS}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], *, source: str = "arrays") -> Environments:
        """Rebuild from :meth:`to_arrays` output; ``source`` names the origin in error messages."""
        arrays = dict(arrays)
        if "cloud_weight" not in arrays and "scheme" in arrays:
            arrays["cloud_weight"] = np.ones((len(arrays["scheme"]), MAX_CLOUD))
        missing = [name for name in _FIELDS if name not in arrays]
        if missing:
            raise ValueError(f"{source}: environment arrays {missing} are missing")
        unknown = sorted(set(arrays) - set(_FIELDS))
        if unknown:
            raise ValueError(f"{source}: unknown environment arrays {unknown}")
        try:
            return cls(**{name: np.asarray(arrays[name]) for name in _FIELDS})
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    def kernel_arrays(self) -> dict[str, np.ndarray]:
        """The fields the compiled core reads (no copies)."""
        return {name: getattr(self, name) for name in _KERNEL_FIELDS}

    def class_names(self) -> np.ndarray:
        """Class name of every environment (array of str)."""
        return np.array([_class_name(int(s), int(z)) for s, z in zip(self.scheme, self.element)], dtype=str)

    def presence(self) -> np.ndarray:
        """(N,) factor in [0, 1] on each atom's predicted force: in the smooth cloud schemes the
        largest cloud weight (the force fades out as the last neighbours leave the cloud), else 1."""
        smooth = np.array([bool(SCHEMES[s]["smooth"]) for s in self.scheme.tolist()], dtype=bool)
        filled = np.arange(MAX_CLOUD)[None, :] < self.n_cloud[:, None]
        largest = np.where(filled, self.cloud_weight, 0.0).max(axis=1, initial=0.0)
        return np.where(smooth, largest, 1.0)

    @property
    def n_flagged(self) -> int:
        """How many environments carry any ``FLAG_*``."""
        return int(np.count_nonzero(self.flags))


def _class_name(scheme: int, element: int) -> str:
    return SCHEMES[scheme]["class_name"] or chemical_symbols[element]


def _build(atoms: Atoms, indices: np.ndarray, chemistry: int, smooth: bool) -> dict[str, np.ndarray]:
    nl = neighbor_list_atoms(atoms, ENVIRONMENT_CUTOFF)
    i, j, d = nl.i, nl.j, nl.D
    keep = np.isin(i, indices)
    i, j, d = i[keep], j[keep], d[keep]
    # CSR in the order of `indices` (centres may repeat or come in any order)
    order = np.argsort(i, kind="stable")
    i, j, d = i[order], j[order], d[order]
    start = np.searchsorted(i, indices, side="left")
    stop = np.searchsorted(i, indices, side="right")
    rows = np.concatenate([np.arange(a, b) for a, b in zip(start, stop)] + [np.zeros(0, int)])
    offsets = np.concatenate([[0], np.cumsum(stop - start)]).astype(np.int64)
    numbers = atoms.numbers
    return _kernels.build_environments(
        chemistry,
        numbers[indices].astype(np.int32),
        offsets,
        numbers[j[rows]].astype(np.int32),
        np.ascontiguousarray(d[rows], dtype=np.float64),
        smooth,
    )


def _check_indices(atoms: Atoms, indices) -> np.ndarray:
    if indices is None:
        return np.arange(len(atoms))
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"indices must be a 1-D array of atom indices, got {idx!r}")
    bad = idx[(idx < 0) | (idx >= len(atoms))]
    if bad.size:
        raise ValueError(f"indices {bad.tolist()} are out of range for {len(atoms)} atoms")
    return idx.astype(np.int64)


def _records(atoms: Atoms, indices, chemistry: str | None, frame: int, smooth: bool = False) -> Environments:
    idx = _check_indices(atoms, indices)
    code = _chemistry_code(atoms, chemistry)
    try:
        arrays = _build(atoms, idx, code, smooth)
    except ValueError as exc:
        raise ValueError(f"frame {frame}: {exc}") from None
    return Environments(**arrays, indices=idx, frame=np.full(len(idx), frame, dtype=np.int64))


def classify(atoms: Atoms, *, chemistry: str | None = None) -> np.ndarray:
    """Class name of every atom.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (positions in Angstrom; periodic cells are handled).
    chemistry : {"thiolate", "generic"}, optional
        Default: :func:`detect_chemistry` of the structure's elements.

    Returns
    -------
    numpy.ndarray of str, shape (len(atoms),)
    """
    return _records(atoms, None, chemistry, 0).class_names()


def class_names(atoms: Atoms, *, chemistry: str | None = None) -> list[str]:
    """The classes present in ``atoms``: thiolate classes in the order of
    :data:`THIOLATE_CLASSES`, generic ones (element symbols) by atomic number."""
    names = set(classify(atoms, chemistry=chemistry).tolist())
    if names <= set(THIOLATE_CLASSES):
        return [name for name in THIOLATE_CLASSES if name in names]
    return sorted(names, key=chemical_symbols.index)


def extract_environments(
    atoms: Atoms, indices=None, *, chemistry: str | None = None, frame: int = 0, smooth: bool = False
) -> dict[str, Environments]:
    """Alignment records of ``atoms`` (or of ``indices``), grouped by class name.

    Parameters
    ----------
    atoms : ase.Atoms
        The structure (Angstrom).
    indices : array of int, optional
        Atoms to extract (default: all). Neighbours are always taken from the whole structure.
    chemistry : {"thiolate", "generic"}, optional
        Default: :func:`detect_chemistry`.
    frame : int
        Stored in ``Environments.frame`` so records from many structures stay traceable.
    smooth : bool
        Cloud atoms (``Au_core``, ``generic``) get the smooth schemes ``*_smooth``: weighted clouds
        that atoms enter and leave with weight 0 (what models trained with ``smooth=True`` use).

    Returns
    -------
    dict mapping class name to :class:`Environments` (atoms in the order given).
    """
    env = _records(atoms, indices, chemistry, frame, smooth)
    names = env.class_names()
    out = {name: env[names == name] for name in dict.fromkeys(names.tolist())}
    flagged = env.n_flagged
    if flagged:
        logger.debug("frame %d: %d of %d environments are flagged (degraded)", frame, flagged, len(env))
    return out
