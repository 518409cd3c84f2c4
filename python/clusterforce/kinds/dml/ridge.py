"""The one linear solve shared by the distance-based models (EMLM, MLM, OAMLM)."""

from __future__ import annotations

import logging

import numpy as np
from scipy import linalg

logger = logging.getLogger(__name__)

#: Below this reciprocal condition number of DᵀD + βI the Cholesky solution is not trusted.
_MIN_RCOND = 1e3 * np.finfo(np.float64).eps


def ridge_solve(D: np.ndarray, Y: np.ndarray, beta: float) -> np.ndarray:
    """Solve ``(DᵀD + beta I) W = DᵀY`` for ``W``.

    Cholesky of the K×K normal matrix is fast; when its estimated reciprocal condition number
    is below ``1e3 * eps`` (near-duplicate references make distance matrices nearly
    singular), the same ridge problem is solved by SVD least squares on the stacked system
    ``[D; sqrt(beta) I] W = [Y; 0]``, which never squares the condition number.

    Parameters
    ----------
    D : ndarray, shape (N, K)
    Y : ndarray, shape (N,) or (N, M)
    beta : float
        Ridge parameter, >= 0.

    Returns
    -------
    ndarray, shape (K,) or (K, M), matching ``Y``.
    """
    D = np.asarray(D, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if D.ndim != 2 or Y.ndim not in (1, 2) or Y.shape[0] != D.shape[0]:
        raise ValueError(f"ridge_solve: D must be (N, K) and Y (N,) or (N, M); got D {D.shape}, Y {Y.shape}")
    if not (beta >= 0 and np.isfinite(beta)):
        raise ValueError(f"ridge_solve: beta must be finite and >= 0, got {beta}")
    k = D.shape[1]
    A = D.T @ D
    A[np.diag_indices(k)] += beta
    rhs = D.T @ Y
    try:
        factor = linalg.cho_factor(A, lower=True, check_finite=False)
        anorm = np.abs(A).sum(axis=0).max()
        rcond, info = linalg.lapack.dpocon(factor[0], anorm, uplo="L")
        if info == 0 and rcond >= _MIN_RCOND:
            return linalg.cho_solve(factor, rhs, check_finite=False)
        logger.info("ridge_solve: DᵀD + βI has rcond %.2e (K=%d); solving by SVD least squares", rcond, k)
    except linalg.LinAlgError:
        logger.info("ridge_solve: Cholesky failed (K=%d); solving by SVD least squares", k)
    stacked = np.vstack([D, np.sqrt(beta) * np.eye(k)])
    zeros = np.zeros((k,) + Y.shape[1:])
    W, *_ = linalg.lstsq(stacked, np.concatenate([Y, zeros]), lapack_driver="gelsd", check_finite=False)
    return W
