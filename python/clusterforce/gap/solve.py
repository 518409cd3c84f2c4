"""Projected-process normal equations, accumulated chunk by chunk, and their solution.

The sparse GP (Quinonero-Candela & Rasmussen 2005; gap_fit) minimises
``|Sigma^-1/2 (y - A alpha)|^2 + alpha^T K_mm alpha``, where a row of ``A`` is a structure's
energy or one force component expressed in the M sparse-point kernels. Only ``A^T A`` and
``A^T y`` (M x M and M) are kept; rows arrive in chunks of bounded size, so memory is
O(M^2 + chunk * M) however many frames are fitted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dsyrk

logger = logging.getLogger(__name__)


class NormalEquations:
    """Running ``A^T A`` and ``A^T b`` of noise-weighted rows.

    Parameters
    ----------
    n_columns : int
        Number of sparse points M.
    chunk_rows : int
        Rows buffered before they are folded into ``A^T A`` with one BLAS call.
    """

    def __init__(self, n_columns: int, *, chunk_rows: int = 4096) -> None:
        if n_columns < 1:
            raise ValueError(f"normal equations need at least one column, got {n_columns}")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.n_columns = n_columns
        # Fortran order so dsyrk updates it in place (upper triangle).
        self._ata = np.zeros((n_columns, n_columns), order="F")
        self._atb = np.zeros(n_columns)
        self._btb = 0.0
        self.n_rows = 0
        self._buf = np.empty((chunk_rows, n_columns))
        self._rhs = np.empty(chunk_rows)
        self._fill = 0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        """Add rows ``a`` (r x M) with targets ``b`` (r,), both already divided by their sigma."""
        a = np.asarray(a, dtype=float).reshape(-1, self.n_columns)
        b = np.asarray(b, dtype=float).reshape(-1)
        if len(a) != len(b):
            raise ValueError(f"{len(a)} rows but {len(b)} targets")
        start = 0
        while start < len(a):
            take = min(len(a) - start, len(self._buf) - self._fill)
            self._buf[self._fill : self._fill + take] = a[start : start + take]
            self._rhs[self._fill : self._fill + take] = b[start : start + take]
            self._fill += take
            start += take
            if self._fill == len(self._buf):
                self.flush()

    def flush(self) -> None:
        """Fold the buffered rows into the accumulated products."""
        if self._fill == 0:
            return
        a = self._buf[: self._fill]
        b = self._rhs[: self._fill]
        # a.T is Fortran-contiguous (M x r): dsyrk computes a.T @ a into the upper triangle.
        self._ata = dsyrk(1.0, a.T, beta=1.0, c=self._ata, trans=0, lower=0, overwrite_c=1)
        self._atb += a.T @ b
        self._btb += float(b @ b)
        self.n_rows += self._fill
        self._fill = 0

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """``A^T A`` (M x M, symmetric) and ``A^T b`` (M,) once all rows are in.

        The returned matrix is the accumulator itself, completed in place (no copy), and the
        row buffer is released; no rows can be added afterwards.
        """
        self.flush()
        _symmetrise_upper(self._ata)
        self._buf = self._rhs = None
        return self._ata, self._atb

    def allreduce(self, comm) -> None:
        """Sum the partial products over the ranks of an MPI communicator (mpi4py)."""
        from mpi4py import MPI

        self.flush()
        comm.Allreduce(MPI.IN_PLACE, self._ata, op=MPI.SUM)
        comm.Allreduce(MPI.IN_PLACE, self._atb, op=MPI.SUM)
        self._btb = comm.allreduce(self._btb, op=MPI.SUM)
        self.n_rows = comm.allreduce(self.n_rows, op=MPI.SUM)


def _symmetrise_upper(a: np.ndarray, block: int = 512) -> None:
    """Copy the upper triangle onto the lower one, in place, a block of columns at a time."""
    n = len(a)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        sub = a[lo:hi, lo:]  # rows lo:hi, upper part to the right
        a[lo:, lo:hi] = np.where(np.arange(lo, n)[:, None] > np.arange(lo, hi)[None, :], sub.T, a[lo:, lo:hi])


@dataclass
class Solution:
    """Weights and how they were obtained."""

    alpha: np.ndarray
    method: str  # "cholesky" or "eigen"
    jitter: float  # relative jitter added to the equilibrated diagonal


def _equilibrate(c: np.ndarray) -> np.ndarray:
    """Scale ``c`` in place to unit diagonal; returns the scale d (c_old = D c D)."""
    d = np.sqrt(np.diag(c)).copy()
    if not np.all(d > 0):
        bad = np.flatnonzero(~(d > 0))[:5]
        raise ValueError(f"normal matrix has non-positive diagonal at sparse point(s) {bad.tolist()}; check delta > 0")
    c /= d[:, None]
    c /= d[None, :]
    return d


def _cholesky(c_hat: np.ndarray, jitter: float, max_jitter: float) -> tuple[tuple, float] | None:
    """Lower Cholesky factor (a new array) of c_hat + j I for the smallest j that works."""
    diag = np.diag(c_hat).copy()
    idx = np.diag_indices_from(c_hat)
    j = jitter
    try:
        while j <= max_jitter:
            c_hat[idx] = diag + j
            try:
                return scipy.linalg.cho_factor(c_hat, lower=True, check_finite=False), j
            except np.linalg.LinAlgError:
                logger.info("Cholesky failed with relative jitter %.1e; increasing it", j)
                j = max(100.0 * j, 1e-12)
        return None
    finally:
        c_hat[idx] = diag


def solve(k_mm: np.ndarray, ata: np.ndarray, atb: np.ndarray, *, jitter: float = 1e-10, max_jitter: float = 1e-4) -> Solution:
    """Solve ``(K_mm + A^T A) alpha = A^T b``.

    The matrix is equilibrated to unit diagonal, then factorised by Cholesky with a relative
    jitter on the diagonal that grows x100 on failure up to ``max_jitter``; beyond that the
    symmetric eigen-decomposition is used and directions with eigenvalues below
    ``max_jitter`` (relative to the largest) are dropped.
    """
    c_hat = k_mm + ata
    d = _equilibrate(c_hat)
    rhs = atb / d
    chol = _cholesky(c_hat, jitter, max_jitter)
    if chol is not None:
        factor, j = chol
        return Solution(scipy.linalg.cho_solve(factor, rhs, check_finite=False) / d, "cholesky", j)
    logger.warning("normal matrix is not positive definite even with jitter %.1e; using an eigen solve", max_jitter)
    w, v = scipy.linalg.eigh(c_hat, check_finite=False)
    keep = w > max_jitter * w.max()
    alpha = v[:, keep] @ ((v[:, keep].T @ rhs) / w[keep])
    return Solution(alpha / d, "eigen", max_jitter)


def _inverse(c: np.ndarray, *, jitter: float, max_jitter: float) -> np.ndarray:
    """Inverse of the symmetric positive (semi)definite ``c``, which is overwritten."""
    d = _equilibrate(c)
    chol = _cholesky(c, jitter, max_jitter)
    if chol is not None:
        del c  # the caller's array is scratch from here on; the factor holds what we need
        inv, info = scipy.linalg.lapack.dpotri(chol[0][0], lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"dpotri failed (info={info})")
        inv = np.ascontiguousarray(inv.T)  # lower triangle filled -> upper of the transpose
        _symmetrise_upper(inv)
    else:
        w, v = scipy.linalg.eigh(c, check_finite=False)
        keep = w > max_jitter * w.max()
        inv = (v[:, keep] / w[keep]) @ v[:, keep].T
    inv /= d[:, None]
    inv /= d[None, :]
    return inv


def variance_matrix(k_mm: np.ndarray, ata: np.ndarray, *, jitter: float = 1e-8, max_jitter: float = 1e-4) -> np.ndarray:
    """``K_mm^-1 - (K_mm + A^T A)^-1``: predictive variance of a local energy with kernel row k is
    ``k(x, x) - k^T V k`` (projected process, no noise term)."""
    v = _inverse(np.array(k_mm, order="C"), jitter=jitter, max_jitter=max_jitter)
    v -= _inverse(k_mm + ata, jitter=jitter, max_jitter=max_jitter)
    _symmetrise_upper(v)
    return v
