"""SOAP power spectrum with sparse analytic gradients (compiled core, dscribe conventions).

The descriptor is dscribe's ``SOAP(rbf="gto", average="off", compression={"mode": "off"},
weighting=None)``: GTO radial basis orthonormalised as dscribe does, real spherical
harmonics, the centre atom's own Gaussian included, all species pairs, species sorted by
atomic number, the same feature order and the same normalisation
``p = pi * sqrt(8 / (2l + 1)) * sum_m c c``. Values agree with dscribe to round-off.

Unlike dscribe's dense ``(n_centers, n_atoms, 3, n_features)`` derivative tensor, gradients
come per (centre, atom) pair, only for the atoms that can affect the centre: those within
:attr:`SOAP.cutoff` (``r_cut`` plus the distance at which a density Gaussian of width
``sigma`` decays to 1e-3, dscribe's padding).

Example
-------
>>> from ase.cluster import Icosahedron
>>> soap = SOAP(species=["Na"], r_cut=4.0, n_max=7, l_max=4, sigma=0.25)
>>> atoms = Icosahedron("Na", 2)
>>> soap.compute(atoms).shape
(13, 140)
"""

from __future__ import annotations

import math
import numbers as _numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers as _symbol_to_number
from ase.data import chemical_symbols as _chemical_symbols

from clusterforce import _kernels

__all__ = ["SOAP", "SoapParams"]


@dataclass(frozen=True)
class SoapParams:
    """The SOAP settings every kind shares, validated in this one place.

    Parameters
    ----------
    r_cut : float
        Radial cutoff of the GTO basis, Angstrom, > 1 (dscribe's lower bound).
    n_max : int
        Number of radial basis functions, >= 1.
    l_max : int
        Maximum degree of the spherical harmonics, 0 <= l_max <= 20.
    sigma : float
        Width of the atomic Gaussians, Angstrom, > 0 (GAP's ``atom_sigma``).
    """

    r_cut: float
    n_max: int
    l_max: int
    sigma: float

    def validate(self, owner: str = "SOAP") -> SoapParams:
        """Raise ValueError naming ``owner`` and the bad setting; returns self."""
        for name in ("r_cut", "sigma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, _numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{owner}: {name} must be a number in Angstrom, got {value!r}")
        for name in ("n_max", "l_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, _numbers.Integral):
                raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
        if not self.r_cut > 1:
            raise ValueError(f"{owner}: r_cut must be > 1 Angstrom, got {self.r_cut!r}")
        if not self.sigma > 0:
            raise ValueError(f"{owner}: sigma must be > 0 Angstrom, got {self.sigma!r}")
        if self.n_max < 1:
            raise ValueError(f"{owner}: n_max must be >= 1, got {self.n_max!r}")
        if not 0 <= self.l_max <= 20:
            raise ValueError(f"{owner}: l_max must be in [0, 20], got {self.l_max!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"r_cut": float(self.r_cut), "n_max": int(self.n_max), "l_max": int(self.l_max), "sigma": float(self.sigma)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SoapParams:
        """Read the settings from a mapping (model-file metadata); ``atom_sigma`` is read as
        ``sigma`` for gap files written before the two names became one."""
        sigma = d["sigma"] if "sigma" in d else d["atom_sigma"]
        return cls(r_cut=d["r_cut"], n_max=d["n_max"], l_max=d["l_max"], sigma=sigma)


def _species_numbers(species: Sequence[str | int]) -> list[int]:
    if isinstance(species, (str, bytes)) or not isinstance(species, Sequence) or len(species) == 0:
        raise ValueError(f"species must be a non-empty list of chemical symbols or atomic numbers, got {species!r}")
    out = []
    for s in species:
        if isinstance(s, str):
            if s not in _symbol_to_number or s == "X":
                raise ValueError(f"species entry {s!r} is not a chemical symbol")
            out.append(_symbol_to_number[s])
        elif isinstance(s, _numbers.Integral) and not isinstance(s, bool) and 1 <= int(s) < len(_chemical_symbols):
            out.append(int(s))
        else:
            raise ValueError(f"species entry {s!r} is neither a chemical symbol nor an atomic number >= 1")
    return sorted(set(out))


def _weighting_arguments(weighting: dict | None) -> dict:
    if weighting is None:
        return {}
    if not isinstance(weighting, dict):
        raise ValueError(f"SOAP weighting must be a dict or None, got {weighting!r}")
    unknown = set(weighting) - {"function", "r0", "c", "m", "w0"}
    if unknown:
        raise ValueError(f"SOAP weighting has unknown keys {sorted(unknown)}; allowed: function, r0, c, m, w0")
    out: dict = {}
    function = weighting.get("function")
    if function is not None:
        if function != "poly":
            raise ValueError(
                f"SOAP weighting function {function!r} is not supported; use 'poly' "
                "(the only dscribe weighting that vanishes smoothly at r0)"
            )
        missing = [k for k in ("r0", "c", "m") if k not in weighting]
        if missing:
            raise ValueError(f"SOAP 'poly' weighting needs r0, c and m; missing {missing}")
        out["poly"] = (float(weighting["r0"]), float(weighting["c"]), float(weighting["m"]))
    if "w0" in weighting:
        out["w0"] = float(weighting["w0"])
    return out


class SOAP:
    """SOAP power spectrum (GTO radial basis), identical to dscribe's, with sparse gradients.

    Parameters
    ----------
    species : sequence of str or int
        Every element that may occur (symbols or atomic numbers); sorted by atomic number
        internally, which fixes the feature order as in dscribe.
    r_cut : float
        Radial cutoff of the GTO basis, Angstrom; must be > 1 (as in dscribe).
    n_max : int
        Number of radial basis functions, >= 1.
    l_max : int
        Maximum degree of the spherical harmonics, 0 <= l_max <= 20.
    sigma : float
        Width of the atomic Gaussians, Angstrom, > 0.
    periodic : bool, default False
        Respect the cell and ``pbc`` of :class:`ase.Atoms` inputs (dscribe's ``periodic``).
    weighting : dict, optional
        dscribe's density weighting, restricted to the one that vanishes smoothly:
        ``{"function": "poly", "r0": r0, "c": c, "m": m}`` gives
        ``w(r) = c (1 + 2 (r/r0)^3 - 3 (r/r0)^2)^m`` for ``r <= r0`` (Angstrom) and 0 beyond;
        an optional ``"w0"`` sets the weight of the centre atom. Without weighting (the
        default, as in dscribe) the descriptor jumps slightly when an atom crosses
        :attr:`cutoff` (the Gaussian tail there is ~1e-3 of its peak); with ``poly`` weighting
        and ``r0 <= cutoff`` it is smooth.

    Raises
    ------
    ValueError
        For a parameter outside the ranges above, or an unknown species.
    """

    def __init__(
        self,
        *,
        species: Sequence[str | int],
        r_cut: float,
        n_max: int,
        l_max: int,
        sigma: float,
        periodic: bool = False,
        weighting: dict | None = None,
    ) -> None:
        self.species = list(species) if not isinstance(species, (str, bytes)) else species
        self.r_cut = r_cut
        self.n_max = n_max
        self.l_max = l_max
        self.sigma = sigma
        self.periodic = periodic
        self.weighting = weighting
        numbers = _species_numbers(species)
        params = SoapParams(r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma).validate()
        self._kernel = _kernels.SoapGTO(
            float(params.r_cut),
            int(params.n_max),
            int(params.l_max),
            float(params.sigma),
            numbers,
            **_weighting_arguments(weighting),
        )

    # -- description -------------------------------------------------------------------
    @property
    def atomic_numbers(self) -> list[int]:
        """Species as sorted atomic numbers (the order of the feature blocks)."""
        return list(self._kernel.species)

    @property
    def n_features(self) -> int:
        """Length of one SOAP vector: ``S n (S n + 1) / 2 * (l_max + 1)`` for S species."""
        return int(self._kernel.n_features)

    @property
    def cutoff(self) -> float:
        """Neighbour cutoff in Angstrom: ``r_cut + sigma * sqrt(-2 ln 1e-3)`` (dscribe's padding)."""
        return float(self._kernel.cutoff)

    def get_params(self) -> dict:
        """Hyperparameters as a JSON-serialisable dict; ``SOAP(**params)`` rebuilds the descriptor."""
        return {
            "species": self.atomic_numbers,
            "r_cut": float(self.r_cut),
            "n_max": int(self.n_max),
            "l_max": int(self.l_max),
            "sigma": float(self.sigma),
            "periodic": bool(self.periodic),
            "weighting": None if self.weighting is None else dict(self.weighting),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"SOAP({args})"

    def get_location(self, pair: tuple[str | int, str | int]) -> slice:
        """Feature slice of a species pair, e.g. ``("Au", "S")`` (order does not matter)."""
        if len(pair) != 2:
            raise ValueError(f"get_location needs a pair of species, got {pair!r}")
        idx = []
        for s in pair:
            z = _species_numbers([s])[0]
            if z not in self.atomic_numbers:
                raise ValueError(f"species {s!r} is not among this SOAP's species {self._symbols()}")
            idx.append(self.atomic_numbers.index(z))
        i, j = sorted(idx)
        n_sp = len(self.atomic_numbers)
        diag = self.n_max * (self.n_max + 1) // 2 * (self.l_max + 1)
        off = self.n_max * self.n_max * (self.l_max + 1)
        blocks = [(a, b) for a in range(n_sp) for b in range(a, n_sp)]
        before = blocks[: blocks.index((i, j))]
        start = sum(diag if a == b else off for a, b in before)
        return slice(start, start + (diag if i == j else off))

    # -- computation ---------------------------------------------------------------------
    def compute(
        self,
        atoms_or_positions: Atoms | np.ndarray,
        numbers: np.ndarray | Sequence[int] | None = None,
        centers: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """SOAP vectors of the given centres.

        Parameters
        ----------
        atoms_or_positions : ase.Atoms or array of shape (n_atoms, 3)
            The structure; positions in Angstrom. Plain positions are a cluster (no cell).
        numbers : array of int, shape (n_atoms,), optional
            Atomic numbers; required with plain positions, not allowed with Atoms.
        centers : sequence of int, optional
            Atom indices of the centres; default all atoms in order.

        Returns
        -------
        numpy.ndarray, shape (n_centers, n_features)
        """
        args = self._prepare(atoms_or_positions, numbers, centers)
        return self._kernel.compute(*args)

    def compute_with_gradients(
        self,
        atoms_or_positions: Atoms | np.ndarray,
        numbers: np.ndarray | Sequence[int] | None = None,
        centers: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """SOAP vectors and their gradients with respect to atom positions, as sparse pairs.

        Parameters are those of :meth:`compute`.

        Returns
        -------
        values : numpy.ndarray, shape (n_centers, n_features)
        gradients : numpy.ndarray, shape (n_pairs, 3, n_features)
            ``gradients[k, a, :] = d values[pair_center[k]] / d positions[pair_atom[k], a]``
            in units of the features per Angstrom. Pairs of one centre are contiguous: first
            the centre atom itself, then each atom within :attr:`cutoff` in increasing index
            (with ``periodic`` the contributions of all images of an atom are summed).
            Any (centre, atom) pair not listed has zero gradient.
        pair_center : numpy.ndarray of int64, shape (n_pairs,)
            Row of ``values`` (position in ``centers``) of each pair.
        pair_atom : numpy.ndarray of int64, shape (n_pairs,)
            Atom index of each pair.
        """
        args = self._prepare(atoms_or_positions, numbers, centers)
        return self._kernel.compute_with_gradients(*args)

    def contract_gradients(
        self,
        atoms_or_positions: Atoms | np.ndarray,
        weights: np.ndarray,
        numbers: np.ndarray | Sequence[int] | None = None,
        centers: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Gradients contracted with per-centre weights, without forming them.

        Returns ``sum_c sum_f weights[c, f] * d values[c, f] / d positions``: with
        ``weights = dE/dp`` of a model ``E = sum_c e(p_c)`` this is ``-forces``. Much cheaper
        than :meth:`compute_with_gradients` when only the contraction is needed.

        Parameters
        ----------
        atoms_or_positions, numbers, centers
            As in :meth:`compute`.
        weights : array, shape (n_centers, n_features)
            One weight vector per centre (per feature unit).

        Returns
        -------
        numpy.ndarray, shape (n_atoms, 3)
            Per Angstrom.
        """
        positions, z, c, cell, pbc = self._prepare(atoms_or_positions, numbers, centers)
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(c), self.n_features):
            raise ValueError(f"weights must have shape (n_centers, n_features) = ({len(c)}, {self.n_features}), got {w.shape}")
        out, _, pair_atom = self._kernel.contract_gradients(positions, z, c, w, cell, pbc)
        total = np.zeros((len(positions), 3))
        np.add.at(total, pair_atom, out)
        return total

    def compute_environment(
        self,
        center_number: int,
        rel_positions: np.ndarray,
        neighbor_numbers: np.ndarray | Sequence[int],
        gradients: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """SOAP of one centre from an explicit neighbour list (the LAMMPS-style core entry).

        Parameters
        ----------
        center_number : int
            Atomic number of the centre atom.
        rel_positions : array, shape (n_neighbors, 3)
            Neighbour positions minus the centre position, Angstrom; the centre itself is
            not listed. Neighbours beyond :attr:`cutoff` are ignored.
        neighbor_numbers : array of int, shape (n_neighbors,)
            Atomic numbers of the neighbours.
        gradients : bool
            Also return the gradients.

        Returns
        -------
        values : numpy.ndarray, shape (n_features,)
        gradients : numpy.ndarray, shape (n_neighbors + 1, 3, n_features), if requested
            Row 0 is the derivative with respect to the centre position, row ``1 + j`` with
            respect to neighbour ``j``.
        """
        rel = np.asarray(rel_positions, dtype=float)
        center = self._species_indices(np.asarray([int(center_number)]), what="the centre")
        species = self._species_indices(np.asarray(neighbor_numbers, dtype=np.int64).reshape(-1), what="neighbour")
        return self._kernel.compute_center(int(center[0]), rel, species, gradients)

    def compute_neighbourhoods(
        self,
        center_numbers: np.ndarray | Sequence[int],
        offsets: np.ndarray,
        rel_positions: np.ndarray,
        neighbor_numbers: np.ndarray | Sequence[int],
    ) -> np.ndarray:
        """SOAP of many centres, each from its own neighbour list (ragged arrays).

        Parameters
        ----------
        center_numbers : array of int, shape (n_centers,)
            Atomic numbers of the centres.
        offsets : array of int, shape (n_centers + 1,)
            Centre ``c`` has the neighbours ``offsets[c]:offsets[c + 1]``; ``offsets[0] == 0``.
        rel_positions : array, shape (n_neighbors, 3)
            Neighbour minus centre positions, Angstrom.
        neighbor_numbers : array of int, shape (n_neighbors,)

        Returns
        -------
        numpy.ndarray, shape (n_centers, n_features)
        """
        centers = self._species_indices(np.asarray(center_numbers, dtype=np.int64).reshape(-1), what="centre")
        species = self._species_indices(np.asarray(neighbor_numbers, dtype=np.int64).reshape(-1), what="neighbour")
        rel = np.asarray(rel_positions, dtype=float).reshape(-1, 3)
        return self._kernel.compute_neighbourhoods(centers, np.asarray(offsets, dtype=np.int64), rel, species)

    # -- helpers -------------------------------------------------------------------------
    def _symbols(self) -> list[str]:
        return [_chemical_symbols[z] for z in self.atomic_numbers]

    def _species_indices(self, numbers: np.ndarray, what: str = "atom") -> np.ndarray:
        known = np.asarray(self.atomic_numbers)
        idx = np.searchsorted(known, numbers)
        bad = (idx >= len(known)) | (known[np.minimum(idx, len(known) - 1)] != numbers)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            z = int(numbers[i])
            name = _chemical_symbols[z] if 0 <= z < len(_chemical_symbols) else "unknown"
            label = what if what == "the centre" else f"{what} {i}"
            raise ValueError(
                f"{label} is {name} (atomic number {z}), which is not among the SOAP species {self._symbols()}; add it to species="
            )
        return idx.astype(np.int32)

    def _prepare(self, atoms_or_positions, numbers, centers):
        cell = pbc = None
        if isinstance(atoms_or_positions, Atoms):
            if numbers is not None:
                raise ValueError("numbers must not be given together with an ase.Atoms (it has its own)")
            atoms = atoms_or_positions
            positions = atoms.get_positions()
            z = atoms.get_atomic_numbers()
            if self.periodic and atoms.pbc.any():
                cell, pbc = atoms.cell.array.copy(), atoms.pbc.copy()
        else:
            positions = np.asarray(atoms_or_positions, dtype=float)
            if numbers is None:
                raise ValueError("numbers (atomic numbers, one per atom) are required with plain positions")
            z = np.asarray(numbers)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (n_atoms, 3), got {positions.shape}")
        z = np.asarray(z).reshape(-1) if np.ndim(z) else np.asarray([z])
        if z.shape[0] != positions.shape[0]:
            raise ValueError(f"numbers has {z.shape[0]} entries but there are {positions.shape[0]} positions")
        if not np.all(np.isfinite(positions)):
            bad = int(np.flatnonzero(~np.isfinite(positions).all(axis=1))[0])
            raise ValueError(f"position of atom {bad} is not finite: {positions[bad].tolist()}")
        self._species_indices(z.astype(np.int64))
        n_atoms = positions.shape[0]
        if centers is None:
            c = np.arange(n_atoms, dtype=np.int64)
        else:
            c = np.asarray(centers)
            if c.ndim != 1 or (c.size and not np.issubdtype(c.dtype, np.integer)):
                raise ValueError(f"centers must be a one-dimensional list of atom indices, got {centers!r}")
            c = c.astype(np.int64)
            bad = np.flatnonzero((c < 0) | (c >= n_atoms))
            if bad.size:
                raise ValueError(f"centers[{int(bad[0])}] = {int(c[bad[0]])} is not an atom index of this {n_atoms}-atom structure")
        return positions, z.astype(np.int32), c, cell, pbc
