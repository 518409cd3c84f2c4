"""Choice of sparse points: uniform grid (2b, 3b), CUR and farthest-point sampling (SOAP)."""

from __future__ import annotations

import numpy as np

from clusterforce.descriptors.selection import cur_rows, farthest_point_sampling

#: Sparse-point selection methods accepted by :func:`select_sparse`.
METHODS = ("uniform", "cur", "fps")


def uniform_grid(points: np.ndarray, n_sparse: int) -> np.ndarray:
    """Centres of occupied cells of a uniform grid over the bounding box of ``points``.

    The grid is refined (same number of bins on every axis) until at least ``n_sparse`` cells
    hold data; if that overshoots, farthest-point sampling keeps ``n_sparse`` of the centres so
    the kept points still cover the occupied region evenly. Sparse points therefore lie where
    descriptors occur, which matters for 3b triangles that fill only part of their box.

    Parameters
    ----------
    points : (n, d) array
        Descriptor values (Angstrom for 2b/3b).
    n_sparse : int
        Number of sparse points wanted.

    Returns
    -------
    (min(n_sparse, n_distinct), d) array of sparse points.
    """
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"uniform_grid needs a non-empty (n, d) array of descriptors, got shape {points.shape}")
    if n_sparse < 1:
        raise ValueError(f"n_sparse must be >= 1, got {n_sparse}")
    distinct = np.unique(points, axis=0)
    if len(distinct) <= n_sparse:
        return distinct
    lo, hi = points.min(axis=0), points.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    unit = (points - lo) / span
    bins = max(1, int(np.floor(n_sparse ** (1.0 / points.shape[1]))))
    while True:
        cells = np.unique(np.minimum((unit * bins).astype(np.int64), bins - 1), axis=0)
        if len(cells) >= n_sparse:
            break
        bins = max(bins + 1, int(bins * 1.1))
    centres = (cells + 0.5) / bins
    if len(centres) > n_sparse:
        centres = centres[farthest_point_sampling(centres, n_sparse)]
    return lo + centres * span


def select_sparse(x: np.ndarray, n_sparse: int, method: str) -> np.ndarray:
    """Sparse points from candidate descriptors ``x`` (rows) by ``method`` (see :data:`METHODS`)."""
    if method not in METHODS:
        raise ValueError(f"unknown sparse method '{method}': use one of {', '.join(METHODS)}")
    if method == "uniform":
        return uniform_grid(x, n_sparse)
    distinct = np.unique(x, axis=0)
    if len(distinct) <= n_sparse:
        return distinct
    pick = cur_rows(distinct, n_sparse) if method == "cur" else farthest_point_sampling(distinct, n_sparse)
    return distinct[pick]
