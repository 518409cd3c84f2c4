"""Per-atom descriptors behind one small interface.

Models only call :meth:`SoapDescriptor.compute` and store :meth:`SoapDescriptor.params` in
their model file. The values come from the compiled SOAP (:class:`clusterforce.descriptors.soap.SOAP`),
the same code the compiled predictors and the LAMMPS pair style run, so training and
prediction see identical descriptors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms

from clusterforce.data import species_indices
from clusterforce.descriptors.neighbors import neighbor_list_atoms
from clusterforce.descriptors.soap import SOAP, SoapParams

#: Name written into model files; a reader refuses descriptors it does not implement. It names
#: the descriptor's definition (dscribe's GTO SOAP, which the compiled SOAP reproduces to
#: round-off), not the library that computes it, so files stay readable either way.
SOAP_BACKEND = "dscribe-soap-gto"


@dataclass(frozen=True)
class Neighbourhoods:
    """Atoms as their neighbours within the SOAP cutoff, in ragged arrays: what a descriptor
    row is computed from, in a few hundred bytes instead of F floats (the form dml model
    files store their reference atoms in; see docs/model-file.md).

    Attributes
    ----------
    numbers : (n,) int64
        Atomic numbers of the centres.
    offsets : (n + 1,) int64
        Centre ``c`` has the neighbours ``offsets[c]:offsets[c + 1]``.
    rel : (m, 3) float64
        Neighbour minus centre positions (periodic images included), Angstrom.
    neighbor_numbers : (m,) int64
    """

    numbers: np.ndarray
    offsets: np.ndarray
    rel: np.ndarray
    neighbor_numbers: np.ndarray

    FIELDS = ("numbers", "offsets", "rel", "neighbor_numbers")

    def __len__(self) -> int:
        return len(self.numbers)

    def take(self, rows: np.ndarray) -> Neighbourhoods:
        """The centres ``rows``, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = np.diff(self.offsets)[rows]
        picked = np.concatenate([np.arange(self.offsets[r], self.offsets[r + 1]) for r in rows]) if len(rows) else np.empty(0, int)
        return Neighbourhoods(
            self.numbers[rows],
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            self.rel[picked].reshape(-1, 3),
            self.neighbor_numbers[picked],
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Neighbourhoods]) -> Neighbourhoods:
        counts = np.concatenate([np.diff(p.offsets) for p in parts])
        return cls(
            np.concatenate([p.numbers for p in parts]),
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            np.concatenate([p.rel for p in parts]).reshape(-1, 3),
            np.concatenate([p.neighbor_numbers for p in parts]),
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], source: str) -> Neighbourhoods:
        missing = [name for name in cls.FIELDS if name not in arrays]
        if missing:
            raise ValueError(f"{source}: arrays {missing} are missing")
        out = cls(*(np.asarray(arrays[name]) for name in cls.FIELDS))
        n, m = len(out.numbers), len(out.neighbor_numbers)
        if out.offsets.shape != (n + 1,) or out.rel.shape != (m, 3) or (n and (out.offsets[0] != 0 or out.offsets[-1] != m)):
            raise ValueError(f"{source}: inconsistent neighbourhood arrays ({n} centres, offsets {out.offsets.shape}, {m} neighbours)")
        return out


class SoapDescriptor:
    """SOAP power spectrum per atom (dscribe's definition: GTO radial basis, species resolved, no averaging).

    Parameters
    ----------
    r_cut : float
        Cutoff radius in Angstrom (paper default 4.0).
    n_max, l_max : int
        Radial and angular expansion orders (paper defaults 7 and 4).
    sigma : float
        Width of the atomic Gaussians in Angstrom (paper default 0.25).
    species : sequence of str, optional
        Chemical symbols the descriptor resolves. ``None`` means "take them from the training
        frames in :meth:`fit`". The list is stored sorted.
    """

    def __init__(
        self,
        *,
        r_cut: float = 4.0,
        n_max: int = 7,
        l_max: int = 4,
        sigma: float = 0.25,
        species: Sequence[str] | None = None,
    ) -> None:
        self.r_cut = r_cut
        self.n_max = n_max
        self.l_max = l_max
        self.sigma = sigma
        self.species = species

    def fit(self, frames: Iterable[Atoms]) -> SoapDescriptor:
        """Fix the species list (from ``species`` or the elements present in ``frames``)."""
        self.soap_params.validate("SOAP descriptor")
        if self.species is not None:
            species = set(self.species)
        else:
            species = set()
            for atoms in frames:
                species.update(atoms.get_chemical_symbols())
        if not species:
            raise ValueError("SOAP descriptor: no species given and the training frames contain no atoms")
        self.species_ = sorted(species)
        self._soap: dict[bool, SOAP] = {}
        return self

    @property
    def soap_params(self) -> SoapParams:
        """The SOAP settings (shared schema of every kind)."""
        return SoapParams(r_cut=self.r_cut, n_max=self.n_max, l_max=self.l_max, sigma=self.sigma)

    @property
    def n_features(self) -> int:
        """Length F of one descriptor vector."""
        return int(self._soap_for(False).n_features)

    def params(self) -> dict[str, Any]:
        """JSON-serialisable parameters that :meth:`from_params` turns back into this descriptor."""
        self._check_fitted()
        return {"backend": SOAP_BACKEND, **self.soap_params.to_dict(), "species": list(self.species_)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> SoapDescriptor:
        """Rebuild a fitted descriptor from :meth:`params` output (e.g. read from a model file)."""
        backend = params.get("backend")
        if backend != SOAP_BACKEND:
            raise ValueError(f"descriptor backend '{backend}' is not supported (expected '{SOAP_BACKEND}')")
        return cls(**SoapParams.from_dict(params).to_dict(), species=params["species"]).fit([])

    def compute(self, atoms: Atoms, centers: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """SOAP vectors of the atoms ``centers`` (all atoms if ``None``).

        Returns
        -------
        ndarray, shape (n_centers, n_features)

        Raises
        ------
        ValueError
            If an atom's element is not in ``species_`` (names the element and atom index).
        """
        self._check_fitted()
        species_indices(atoms, self.species_)
        if centers is None:
            centers = np.arange(len(atoms))
        centers = np.asarray(centers, dtype=int).ravel()
        if centers.size == 0:
            return np.empty((0, self.n_features))
        if centers.min() < 0 or centers.max() >= len(atoms):
            raise ValueError(f"center index out of range for {len(atoms)} atoms: {centers.min()}..{centers.max()}")
        soap = self._soap_for(bool(np.any(atoms.pbc)))
        return np.ascontiguousarray(soap.compute(atoms, centers=centers), dtype=np.float64)

    def neighbourhoods(self, atoms: Atoms, centers: Sequence[int] | np.ndarray | None = None) -> Neighbourhoods:
        """The neighbours of ``centers`` (all atoms if ``None``) within the SOAP cutoff:
        :meth:`compute_neighbourhoods` of them equals :meth:`compute` on ``atoms``."""
        nl = neighbor_list_atoms(atoms, self._soap_for(False).cutoff)
        every_atom = Neighbourhoods(
            atoms.numbers.astype(np.int64),
            np.searchsorted(nl.i, np.arange(len(atoms) + 1)).astype(np.int64),
            nl.D.reshape(-1, 3),
            atoms.numbers[nl.j].astype(np.int64),
        )
        return every_atom if centers is None else every_atom.take(np.asarray(centers, dtype=np.int64).ravel())

    def compute_neighbourhoods(self, neighbourhoods: Neighbourhoods) -> np.ndarray:
        """SOAP vectors (n, F) of atoms given by their :class:`Neighbourhoods`."""
        nb = neighbourhoods
        return self._soap_for(False).compute_neighbourhoods(nb.numbers, nb.offsets, nb.rel, nb.neighbor_numbers)

    def _soap_for(self, periodic: bool) -> SOAP:
        self._check_fitted()
        if periodic not in self._soap:
            self._soap[periodic] = SOAP(
                species=self.species_,
                r_cut=float(self.r_cut),
                n_max=int(self.n_max),
                l_max=int(self.l_max),
                sigma=float(self.sigma),
                periodic=periodic,
            )
        return self._soap[periodic]

    def __getstate__(self) -> dict[str, Any]:
        # Compiled SOAP objects cannot be pickled; they are rebuilt on first use.
        return {**self.__dict__, "_soap": {}}

    def _check_fitted(self) -> None:
        if not hasattr(self, "species_"):
            raise RuntimeError("SoapDescriptor is not fitted: call fit(frames) or use from_params(params)")
