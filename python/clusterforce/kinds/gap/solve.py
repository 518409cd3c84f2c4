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


def _factorise(c: np.ndarray, jitter: float, max_jitter: float):
    """Equilibrate ``c`` (overwritten) and factorise it: Cholesky with a relative jitter that grows
    x100 on failure up to ``max_jitter``, beyond that the symmetric eigen-decomposition with the
    directions whose eigenvalues are below ``max_jitter`` (relative to the largest) dropped.

    Returns (scale d, method, jitter, factor): the factor is scipy's ``cho_factor`` pair or the
    kept (eigenvalues, eigenvectors)."""
    d = _equilibrate(c)
    chol = _cholesky(c, jitter, max_jitter)
    if chol is not None:
        return d, "cholesky", chol[1], chol[0]
    w, v = scipy.linalg.eigh(c, check_finite=False)
    keep = w > max_jitter * w.max()
    return d, "eigen", max_jitter, (w[keep], v[:, keep])


def _apply_inverse(method: str, factor, d: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    rhs = rhs / d
    if method == "cholesky":
        return scipy.linalg.cho_solve(factor, rhs, check_finite=False) / d
    w, v = factor
    return v @ ((v.T @ rhs) / w) / d


def _full_inverse(method: str, factor, d: np.ndarray) -> np.ndarray:
    """The inverse itself (M x M, symmetric) from a factorisation of :func:`_factorise`."""
    if method == "cholesky":
        inv, info = scipy.linalg.lapack.dpotri(factor[0], lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"dpotri failed (info={info})")
        inv = np.ascontiguousarray(inv.T)  # lower triangle filled -> upper of the transpose
        _symmetrise_upper(inv)
    else:
        w, v = factor
        inv = (v / w) @ v.T
    inv /= d[:, None]
    inv /= d[None, :]
    return inv


def solve(k_mm: np.ndarray, ata: np.ndarray, atb: np.ndarray, *, jitter: float = 1e-10, max_jitter: float = 1e-4) -> Solution:
    """Solve ``(K_mm + A^T A) alpha = A^T b``.

    The matrix is equilibrated to unit diagonal, then factorised by Cholesky with a relative
    jitter on the diagonal that grows x100 on failure up to ``max_jitter``; beyond that the
    symmetric eigen-decomposition is used and directions with eigenvalues below
    ``max_jitter`` (relative to the largest) are dropped.
    """
    d, method, used, factor = _factorise(k_mm + ata, jitter, max_jitter)
    if method == "eigen":
        logger.warning("normal matrix is not positive definite even with jitter %.1e; using an eigen solve", max_jitter)
    return Solution(_apply_inverse(method, factor, d, atb), method, used)


#: Relative jitter of the two inverses of the variance matrix. Their difference is what is kept,
#: so both take the same one, larger than the solve's: with 1e-10 round-off dominates the local
#: energy variance of a 2-body model at its own training frames.
VARIANCE_JITTER = 1e-8


def inverse(c: np.ndarray, *, jitter: float = VARIANCE_JITTER, max_jitter: float = 1e-4) -> np.ndarray:
    """Inverse of the symmetric positive (semi)definite ``c`` (not modified), factorised as
    :func:`solve` does (a pseudo-inverse over the kept eigen-directions if it is singular)."""
    d, method, _, factor = _factorise(np.array(c, dtype=float, order="C"), jitter, max_jitter)
    return _full_inverse(method, factor, d)


def variance_matrix(k_mm_inverse: np.ndarray, c: np.ndarray, *, jitter: float = VARIANCE_JITTER, max_jitter: float = 1e-4) -> np.ndarray:
    """``K_mm^-1 - (K_mm + A^T A)^-1`` from ``inverse(K_mm)`` and ``c = K_mm + A^T A``: the
    predictive variance of a local energy with kernel row k is ``k(x, x) - k^T V k`` (projected
    process, no noise term). K_mm^-1 is passed in because a fit reuses it for every solve (one
    per left-out group of the uncertainty calibration, and every ``partial_fit``)."""
    v = k_mm_inverse - inverse(c, jitter=jitter, max_jitter=max_jitter)
    _symmetrise_upper(v)
    return v
