"""Training pipeline of the sparse GP on plain arrays: sparse points, K_mm, streamed normal equations.

:class:`clusterforce.kinds.gap.model.GAPModel` turns frames into :class:`Sample` objects and calls
these functions; nothing here knows about ASE.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from tqdm.auto import tqdm

from clusterforce.kinds.gap.kernels import Geometry, NBodyKernel, SoapKernel
from clusterforce.kinds.gap.solve import NormalEquations
from clusterforce.kinds.gap.terms import Soap, Term

logger = logging.getLogger(__name__)

TermKernel = NBodyKernel | SoapKernel


@dataclass
class Sample:
    """One training structure.

    energy is the reference total energy minus the isolated-atom energies (eV) or None;
    forces (n, 3) eV/A or None; energy_sigma is the noise of the total energy (eV);
    force_sigma (n,) the noise of each atom's force components (eV/A).
    """

    geometry: Geometry
    energy: float | None
    forces: np.ndarray | None
    energy_sigma: float
    force_sigma: np.ndarray
    label: str = ""


def make_kernels(terms: Sequence[Term], atomic_numbers: list[int], *, seed: int = 0, max_candidates: int = 20000) -> list[TermKernel]:
    """Training-side objects of the terms, in order."""
    out: list[TermKernel] = []
    for term in terms:
        if isinstance(term, Soap):
            out.append(SoapKernel(term, atomic_numbers, max_candidates=max_candidates, seed=seed))
        else:
            out.append(NBodyKernel(term, len(atomic_numbers)))
    return out


def _geometries(samples: Sequence[Sample], progress: bool, desc: str) -> Iterator[Geometry]:
    for s in tqdm(samples, desc=desc, disable=not progress, leave=False):
        yield s.geometry


def select_sparse_points(kernels: Sequence[TermKernel], samples: Sequence[Sample], *, progress: bool = True, comm=None) -> None:
    """Choose every term's sparse points from the training structures (on rank 0 of ``comm``,
    then broadcast, so every rank solves the same problem)."""
    rank = 0 if comm is None else comm.Get_rank()
    for k in kernels:
        if rank == 0:
            k.select_sparse(_geometries(samples, progress, f"sparse points ({k.term.kind})"))
            logger.info("%s term: %d sparse points", k.term.kind, k.n_sparse)
        if comm is not None:
            sparse, offsets = comm.bcast((k.sparse, k.offsets) if rank == 0 else None, root=0)
            k.set_sparse(sparse, offsets)


def sparse_covariance(kernels: Sequence[TermKernel]) -> np.ndarray:
    """Block-diagonal K_mm over all terms (eV^2)."""
    return scipy.linalg.block_diag(*[k.sparse_covariance() for k in kernels])


def sample_rows(kernels: Sequence[TermKernel], sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Noise-weighted design rows and targets of one structure: energy row first (if any),
    then the 3n force components (if any)."""
    parts = [k.rows(sample.geometry) for k in kernels]
    blocks, targets = [], []
    if sample.energy is not None:
        blocks.append(np.concatenate([p[0] for p in parts])[None, :] / sample.energy_sigma)
        targets.append(np.array([sample.energy / sample.energy_sigma]))
    if sample.forces is not None:
        n = len(sample.geometry.species)
        f_rows = np.concatenate([p[1].reshape(3 * n, -1) for p in parts], axis=1)
        w = np.repeat(1.0 / sample.force_sigma, 3)
        blocks.append(f_rows * w[:, None])
        targets.append(sample.forces.reshape(-1) * w)
    if not blocks:
        raise ValueError(f"{sample.label}: frame has neither an energy nor forces to fit")
    return np.concatenate(blocks), np.concatenate(targets)


def accumulate(
    kernels: Sequence[TermKernel],
    samples: Sequence[Sample],
    *,
    chunk_rows: int,
    progress: bool = True,
    comm=None,
) -> NormalEquations:
    """Stream the samples through the normal equations; with an MPI communicator each rank
    takes every size-th sample and the partial sums are Allreduced."""
    m = sum(k.n_sparse for k in kernels)
    eq = NormalEquations(m, chunk_rows=chunk_rows)
    rank, size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())
    mine = samples[rank::size]
    for sample in tqdm(mine, desc="normal equations", disable=not progress or rank != 0, leave=False):
        eq.add(*sample_rows(kernels, sample))
    if comm is not None and size > 1:
        eq.allreduce(comm)
    else:
        eq.flush()
    return eq


def chunk_rows_for(n_sparse: int, max_chunk_mb: float) -> int:
    """Rows per chunk so the chunk buffer stays within ``max_chunk_mb`` megabytes."""
    return max(64, int(max_chunk_mb * 2**20 // (8 * max(n_sparse, 1))))
