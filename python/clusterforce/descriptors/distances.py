"""Euclidean distance matrices between descriptor sets (compiled, OpenMP).

Thin validated wrappers around ``cpp/include/clusterforce/distances.hpp``. Distances have
the units of the inputs (for SOAP vectors: none; for positions: Angstrom).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from clusterforce import _kernels

__all__ = ["euclidean_distances", "squared_row_norms"]


def _as_matrix(name: str, values: ArrayLike) -> NDArray[np.float64]:
    array = np.ascontiguousarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array of shape (n_samples, n_features), got shape {array.shape}")
    _require_finite(name, array)
    return array


def _as_norms(name: str, values: ArrayLike, rows: int, matrix: str) -> NDArray[np.float64]:
    norms = np.ascontiguousarray(values, dtype=np.float64)
    if norms.shape != (rows,):
        raise ValueError(f"{name} must have shape ({rows},), one squared norm per row of {matrix}, got shape {norms.shape}")
    _require_finite(name, norms)
    if norms.size and norms.min() < 0:
        raise ValueError(f"{name} holds squared norms and must be >= 0, got min {norms.min()!r}")
    return norms


def _require_finite(name: str, array: NDArray[np.float64]) -> None:
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} contains NaN or infinity (first at index {tuple(int(i) for i in bad)}); clean or drop those rows first")


def euclidean_distances(
    X: ArrayLike,
    Y: ArrayLike | None = None,
    *,
    exact: bool = False,
    squared: bool = False,
    X_sqnorms: ArrayLike | None = None,
    Y_sqnorms: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Distance matrix between the rows of ``X`` and the rows of ``Y``.

    Parameters
    ----------
    X : array_like, shape (n, f)
        Query vectors (float64; other dtypes are converted).
    Y : array_like, shape (k, f), optional
        Reference vectors; ``None`` means ``X`` (the diagonal is then exactly 0).
    exact : bool, default False
        False: ``sqrt(|x|^2 + |y|^2 - 2 x.y)`` with the product as a blocked matrix
        multiplication (fast); pairs closer than 1 % of their norm scale are recomputed from
        differences, so near-duplicates keep full accuracy and identical rows give 0.
        True: ``sqrt(sum((x - y)^2))`` through the same blocked loops (about half the speed,
        no cancellation anywhere).
    squared : bool, default False
        Return squared distances.
    X_sqnorms, Y_sqnorms : array_like, shape (n,) / (k,), optional
        Precomputed ``squared_row_norms(X)`` / ``squared_row_norms(Y)``; a model that keeps
        fixed references passes their norms to skip recomputing them. Not needed (and
        ignored) when ``exact`` or when ``X`` has fewer than 32 rows: those are computed from
        differences, as fast there as the gram form.

    Returns
    -------
    ndarray, shape (n, k)
        ``D[i, j] = |X[i] - Y[j]|`` in the units of the inputs (squared if ``squared``).

    Raises
    ------
    ValueError
        If an input is not 2-d, the feature counts differ, a value is NaN or infinite, or a
        norm array has the wrong shape or a negative entry.
    """
    x = _as_matrix("X", X)
    y = x if Y is None else _as_matrix("Y", Y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"X and Y must have the same number of features, got X {x.shape} and Y {y.shape}")
    xn = None if X_sqnorms is None else _as_norms("X_sqnorms", X_sqnorms, x.shape[0], "X")
    if Y_sqnorms is not None:
        yn = _as_norms("Y_sqnorms", Y_sqnorms, y.shape[0], "Y")
    elif Y is None:
        yn = xn
    else:
        yn = None
    return _kernels.euclidean_distances(x, y, exact=exact, squared=squared, X_sqnorms=xn, Y_sqnorms=yn)


def squared_row_norms(X: ArrayLike) -> NDArray[np.float64]:
    """Squared Euclidean norm of every row, ``|X[i]|^2``.

    Parameters
    ----------
    X : array_like, shape (n, f)

    Returns
    -------
    ndarray, shape (n,)
        In the squared units of ``X``; pass as ``Y_sqnorms`` to :func:`euclidean_distances`.
    """
    return _kernels.squared_row_norms(_as_matrix("X", X))
