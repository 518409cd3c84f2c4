"""GAP terms during training: sparse points, kernel matrix K_mm and kernel rows per structure.

Every term object offers the same small interface, used by :mod:`clusterforce.kinds.gap.model`:

``select_sparse(geometries)``
    choose the sparse points from an iterable of :class:`Geometry`;
``n_sparse``, ``sparse_covariance()``
    number of sparse points M and their kernel matrix (M x M, eV^2);
``rows(geometry)``
    ``(energy_row (M,), force_rows (n, 3, M))`` with force_rows = -d energy_row / d positions,
    so that a structure's energy is ``energy_row @ alpha`` and its forces ``force_rows @ alpha``;
``predictor_term(alpha)``
    the compiled term used for prediction (the same C++ as LAMMPS);
``arrays()`` / ``from_arrays()``
    what is stored in the model file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np
import scipy.sparse

from clusterforce import _kernels
from clusterforce.kinds.gap.sparse import select_sparse
from clusterforce.kinds.gap.terms import Soap, ThreeBody, TwoBody


class Geometry(NamedTuple):
    """A structure for the kernels: positions (n, 3) Angstrom, species indices (n,) int32 in
    model order, and for periodic structures the cell (3, 3; rows = lattice vectors) and pbc (3,)."""

    positions: np.ndarray
    species: np.ndarray
    cell: np.ndarray | None = None
    pbc: tuple[bool, bool, bool] | None = None


# Working-memory target for blocks of SOAP gradient rows (bytes).
_BLOCK_BYTES = 64 * 2**20


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

    def descriptors(self, g: Geometry) -> dict[str, np.ndarray]:
        """Pair or triplet descriptors of every centre (see ``_kernels.nbody_structure_descriptors``)."""
        t = self.term
        return _kernels.nbody_structure_descriptors(t.order, t.r_cut, t.width, self.n_species, *g)

    def select_sparse(self, geometries: Iterable[Geometry]) -> None:
        """Uniform-grid sparse points, ``term.n_sparse`` per species channel present in the data."""
        per_channel: list[list[np.ndarray]] = [[] for _ in range(self.n_channels)]
        for g in geometries:
            d = self.descriptors(g)
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

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_rows_term": None}  # compiled; rebuilt on first use

    def _term(self) -> _kernels.NBodyTerm:
        if self._rows_term is None:
            raise RuntimeError(f"{self.term.kind} term has no sparse points yet: call select_sparse first")
        return self._rows_term

    def sparse_covariance(self) -> np.ndarray:
        return self._term().sparse_covariance()

    def rows(self, g: Geometry) -> tuple[np.ndarray, np.ndarray]:
        return self._term().rows(*g)

    def predictor_term(self, alpha: np.ndarray | None) -> _kernels.NBodyTerm:
        t = self.term
        return _kernels.NBodyTerm(self.n_species, t.order, t.r_cut, t.width, t.theta, t.delta, self.sparse, self.offsets, alpha)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"sparse": self.sparse, "offsets": self.offsets}

    @classmethod
    def from_arrays(cls, term: TwoBody | ThreeBody, n_species: int, arrays: Mapping[str, np.ndarray]) -> NBodyKernel:
        k = cls(term, n_species)
        k.set_sparse(arrays["sparse"], arrays["offsets"])
        return k


class SoapKernel:
    """The SOAP term: normalised power spectra of sparse environments per centre species.

    Training needs kernel rows as a design matrix, so they are built here with numpy (one
    BLAS product per structure against all sparse points); prediction never uses them: it
    runs the same formulas in C++ (``_kernels.SoapTerm``, shared with LAMMPS).
    """

    def __init__(self, term: Soap, atomic_numbers: list[int], *, max_candidates: int = 20000, seed: int = 0) -> None:
        term.validate()
        self.term = term
        self.atomic_numbers = list(atomic_numbers)
        self.n_species = len(atomic_numbers)
        self.max_candidates = max_candidates
        self.seed = seed
        self.soap = self._soap()
        self.sparse: np.ndarray | None = None
        self.offsets: np.ndarray | None = None
        self._numbers = np.asarray(self.atomic_numbers, dtype=np.int32)

    def _soap(self) -> _kernels.SoapGTO:
        t = self.term
        return _kernels.SoapGTO(t.r_cut, t.n_max, t.l_max, t.sigma, self.atomic_numbers, cutoff_width=t.r_cut_width)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "soap"}  # compiled: rebuilt from the term

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.soap = self._soap()

    @property
    def n_sparse(self) -> int:
        return 0 if self.sparse is None else len(self.sparse)

    @property
    def n_features(self) -> int:
        return int(self.soap.n_features)

    def _soap_args(self, g: Geometry) -> tuple:
        return g.positions, self._numbers[g.species], np.arange(len(g.species), dtype=np.int64), g.cell, g.pbc

    def normalised(self, g: Geometry) -> np.ndarray:
        """Normalised power spectra (n, F) of every atom of a structure."""
        p = self.soap.compute(*self._soap_args(g))
        return p / np.linalg.norm(p, axis=1, keepdims=True)

    def select_sparse(self, geometries: Iterable[Geometry]) -> None:
        """``term.n_sparse`` environments per centre species by CUR or FPS among the candidates.

        At most ``max_candidates`` environments per species are kept as candidates (a uniform
        random subset, reservoir style), so selection memory does not grow with the data.
        """
        rng = np.random.default_rng(self.seed)
        pools: list[list[np.ndarray]] = [[] for _ in range(self.n_species)]
        for g in geometries:
            species = g.species
            p = self.normalised(g)
            for s in np.unique(species):
                pools[s].append(p[species == s])
                if sum(len(x) for x in pools[s]) > 2 * self.max_candidates:
                    pools[s] = [_subsample(np.concatenate(pools[s]), self.max_candidates, rng)]
        chosen, counts = [], []
        for pool in pools:
            if not pool:
                chosen.append(np.empty((0, self.n_features)))
                counts.append(0)
                continue
            x = _subsample(np.concatenate(pool), self.max_candidates, rng)
            pts = select_sparse(x, self.term.n_sparse, self.term.sparse_method)
            chosen.append(pts)
            counts.append(len(pts))
        self.set_sparse(np.concatenate(chosen), np.concatenate([[0], np.cumsum(counts)]))

    def set_sparse(self, sparse: np.ndarray, offsets: np.ndarray) -> None:
        """Sparse environments (M, F), already normalised, grouped by centre species."""
        self.sparse = np.ascontiguousarray(sparse, dtype=float).reshape(-1, self.n_features)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self._sparse_species = np.repeat(np.arange(self.n_species), np.diff(self.offsets))

    def _check(self) -> None:
        if self.sparse is None:
            raise RuntimeError("SOAP term has no sparse points yet: call select_sparse first")

    def sparse_covariance(self) -> np.ndarray:
        self._check()
        same = self._sparse_species[:, None] == self._sparse_species[None, :]
        return self.term.delta**2 * np.where(same, self.sparse @ self.sparse.T, 0.0) ** self.term.zeta

    def rows(self, g: Geometry) -> tuple[np.ndarray, np.ndarray]:
        self._check()
        species = g.species
        n, m, f = len(species), self.n_sparse, self.n_features
        d2, zeta = self.term.delta**2, self.term.zeta
        values, grads, pair_centre, pair_atom = self.soap.compute_with_gradients(*self._soap_args(g))
        norm = np.linalg.norm(values, axis=1)
        p = values / norm[:, None]
        same = species[:, None] == self._sparse_species[None, :]
        z = np.where(same, p @ self.sparse.T, 0.0)  # (n, M)
        energy_row = d2 * np.sum(z**zeta, axis=0)
        # d k_m / d r_a over pairs (centre c, atom a): coef_cm (g . s_m - z_cm g . p_c) with g = dp_c/dr_a
        coef = np.where(same, d2 * zeta * z ** (zeta - 1), 0.0) / norm[:, None]  # (n, M)
        force_rows = np.zeros((n * 3, m))
        # Pairs in blocks so the (3 pairs, M) intermediates stay near _BLOCK_BYTES.
        step = max(1, _BLOCK_BYTES // (8 * 3 * max(m, 1)))
        for lo in range(0, len(pair_atom), step):
            hi = min(lo + step, len(pair_atom))
            g = grads[lo:hi]
            centre = np.repeat(pair_centre[lo:hi], 3)
            gs = g.reshape(-1, f) @ self.sparse.T  # (3 pairs, M)
            gp = np.einsum("pxf,pf->px", g, p[pair_centre[lo:hi]]).reshape(-1)
            contrib = coef[centre] * (gs - gp[:, None] * z[centre])
            rows = (np.repeat(pair_atom[lo:hi], 3) * 3 + np.tile(np.arange(3), hi - lo)).astype(np.int64)
            scatter = scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(n * 3, len(rows)))
            force_rows -= scatter @ contrib
        force_rows = force_rows.reshape(n, 3, m)
        return energy_row, force_rows

    def predictor_term(self, alpha: np.ndarray | None) -> _kernels.SoapTerm:
        self._check()
        return _kernels.SoapTerm(self.soap, self.term.delta, self.term.zeta, self.sparse, self.offsets, alpha)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"sparse": self.sparse, "offsets": self.offsets}

    @classmethod
    def from_arrays(cls, term: Soap, atomic_numbers: list[int], arrays: Mapping[str, np.ndarray]) -> SoapKernel:
        k = cls(term, atomic_numbers)
        k.set_sparse(arrays["sparse"], arrays["offsets"])
        return k


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if len(x) <= n:
        return x
    return x[np.sort(rng.choice(len(x), size=n, replace=False))]
