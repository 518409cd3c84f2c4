"""GAP terms during training: sparse points, kernel matrix K_mm and kernel rows per structure.

Every term object offers the same small interface, used by :mod:`clusterforce.gap.model`:

``select_sparse(structures)``
    choose the sparse points from an iterable of ``(positions, species)``;
``n_sparse``, ``sparse_covariance()``
    number of sparse points M and their kernel matrix (M x M, eV^2);
``rows(positions, species)``
    ``(energy_row (M,), force_rows (n, 3, M))`` with force_rows = -d energy_row / d positions,
    so that a structure's energy is ``energy_row @ alpha`` and its forces ``force_rows @ alpha``;
``predictor_term(alpha)``
    the compiled term used for prediction (the same C++ as LAMMPS);
``arrays()`` / ``from_arrays()``
    what is stored in the model file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from .. import _kernels
from .sparse import select_sparse
from .terms import ThreeBody, TwoBody

Structure = tuple[np.ndarray, np.ndarray]


class NBodyKernel:
    """A 2b or 3b term: sparse descriptors per species channel and the compiled kernel."""

    def __init__(self, term: TwoBody | ThreeBody, n_species: int) -> None:
        term.validate()
        self.term = term
        self.n_species = n_species
        self.n_channels = _kernels.n_nbody_channels(term.order, n_species)
        self.sparse: np.ndarray | None = None
        self.offsets: np.ndarray | None = None
        self._rows_term: _kernels.NBodyTerm | None = None

    @property
    def dim(self) -> int:
        return 1 if self.term.order == 2 else 3

    @property
    def n_sparse(self) -> int:
        return 0 if self.sparse is None else len(self.sparse)

    def descriptors(self, positions: np.ndarray, species: np.ndarray) -> dict[str, np.ndarray]:
        """Pair or triplet descriptors of every centre (see ``_kernels.nbody_structure_descriptors``)."""
        t = self.term
        return _kernels.nbody_structure_descriptors(t.order, t.r_cut, t.width, self.n_species, positions, species)

    def select_sparse(self, structures: Iterable[Structure]) -> None:
        """Uniform-grid sparse points, ``term.n_sparse`` per species channel present in the data."""
        per_channel: list[list[np.ndarray]] = [[] for _ in range(self.n_channels)]
        for positions, species in structures:
            d = self.descriptors(positions, species)
            for c in np.unique(d["channel"]):
                per_channel[c].append(d["q"][d["channel"] == c])
        chosen, counts = [], []
        for qs in per_channel:
            pts = select_sparse(np.concatenate(qs), self.term.n_sparse, "uniform") if qs else np.empty((0, self.dim))
            chosen.append(pts)
            counts.append(len(pts))
        if sum(counts) == 0:
            raise ValueError(
                f"{self.term.kind} term: no pair/triplet inside r_cut={self.term.r_cut} A in the training data; "
                "increase r_cut or drop the term"
            )
        self.set_sparse(np.concatenate(chosen), np.concatenate([[0], np.cumsum(counts)]))

    def set_sparse(self, sparse: np.ndarray, offsets: np.ndarray) -> None:
        self.sparse = np.ascontiguousarray(sparse, dtype=float).reshape(-1, self.dim)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self._rows_term = self.predictor_term(None)

    def _term(self) -> _kernels.NBodyTerm:
        if self._rows_term is None:
            raise RuntimeError(f"{self.term.kind} term has no sparse points yet: call select_sparse first")
        return self._rows_term

    def sparse_covariance(self) -> np.ndarray:
        return self._term().sparse_covariance()

    def rows(self, positions: np.ndarray, species: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._term().rows(positions, species)

    def predictor_term(self, alpha: np.ndarray | None) -> _kernels.NBodyTerm:
        t = self.term
        return _kernels.NBodyTerm(
            self.n_species, t.order, t.r_cut, t.width, t.theta, t.delta, self.sparse, self.offsets, alpha
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {"sparse": self.sparse, "offsets": self.offsets}

    @classmethod
    def from_arrays(cls, term: TwoBody | ThreeBody, n_species: int, arrays: Mapping[str, np.ndarray]) -> NBodyKernel:
        k = cls(term, n_species)
        k.set_sparse(arrays["sparse"], arrays["offsets"])
        return k
