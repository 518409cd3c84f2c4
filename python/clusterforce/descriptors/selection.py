"""Choosing representative rows of a descriptor matrix: farthest-point sampling, RS-maximin
(the dml kind's references, oamlm paper) and its continuation over new data, and CUR leverage
(the gap kind's sparse points)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from clusterforce.descriptors.distances import euclidean_distances


def farthest_point_sampling(X: np.ndarray, k: int, *, start: int = 0) -> np.ndarray:
    """Pick ``k`` rows of ``X``: row ``start``, then each time the row whose Euclidean distance
    to the already chosen set is largest.

    Parameters
    ----------
    X : ndarray, shape (N, F)
    k : int
        Number of rows wanted, ``1 <= k <= N``.
    start : int
        Index of the first row.

    Returns
    -------
    ndarray of int, shape (k,)
        Indices into ``X`` in selection order.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"farthest-point sampling expects a 2-D array (N, F), got shape {X.shape}")
    n = X.shape[0]
    if int(k) != k or not 1 <= k <= n:
        raise ValueError(f"cannot select {k!r} of {n} points by farthest-point sampling")
    sqnorms = np.einsum("ij,ij->i", X, X)
    chosen = np.empty(int(k), dtype=np.intp)
    chosen[0] = start
    # Squared distance of every point to its nearest chosen point; -inf marks chosen ones so
    # duplicates of a chosen point can still be picked once everything else is exhausted.
    nearest = np.full(n, np.inf)
    for step in range(1, int(k)):
        last = chosen[step - 1]
        d2 = sqnorms - 2.0 * (X @ X[last]) + sqnorms[last]
        np.minimum(nearest, d2, out=nearest)
        nearest[last] = -np.inf
        chosen[step] = int(np.argmax(nearest))
    return chosen


def rs_maximin(X: np.ndarray, k: int, *, random_state=None) -> np.ndarray:
    """Pick ``k`` rows of ``X`` by RS-maximin: a random start, then farthest-point sampling.

    The references spread over the descriptor space instead of crowding where data are dense.

    Parameters
    ----------
    X : ndarray, shape (N, F)
    k : int
        Number of points wanted; ``k >= N`` returns all indices ``0..N-1``.
    random_state : int, numpy Generator/RandomState or None
        Seeds the random first point.

    Returns
    -------
    ndarray of int, shape (min(k, N),)
        Indices into ``X`` in selection order.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"rs_maximin expects a 2-D array (N, F), got shape {X.shape}")
    if int(k) != k or k < 1:
        raise ValueError(f"rs_maximin: k must be a positive integer, got {k!r}")
    n = X.shape[0]
    if k >= n:
        return np.arange(n)
    start = check_random_state(random_state).randint(n)
    return farthest_point_sampling(X, k, start=start)


def extend_maximin(references: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Candidates that farthest-point sampling, continued from ``references``, would add.

    Each step takes the candidate farthest from the references and the candidates already taken,
    and stops when that distance is no longer above the median nearest-neighbour spacing of
    ``references``: environments unlike any reference join, repeats of known ones do not, so the
    references keep the density RS-maximin gave them.

    Parameters
    ----------
    references : ndarray, shape (K, F)
        The present references (K >= 2).
    candidates : ndarray, shape (N, F)

    Returns
    -------
    ndarray of int
        Indices into ``candidates`` in selection order (possibly empty).
    """
    references = np.asarray(references, dtype=np.float64)
    candidates = np.asarray(candidates, dtype=np.float64)
    if references.ndim != 2 or candidates.ndim != 2 or references.shape[1] != candidates.shape[1] or len(references) < 2:
        raise ValueError(
            f"extend_maximin needs references (K >= 2, F) and candidates (N, F), got shapes {references.shape}, {candidates.shape}"
        )
    if not len(candidates):
        return np.empty(0, dtype=np.intp)
    within = euclidean_distances(references, references)
    np.fill_diagonal(within, np.inf)
    spacing = float(np.median(within.min(axis=1)))
    nearest = euclidean_distances(candidates, references).min(axis=1)
    chosen = []
    while True:
        best = int(np.argmax(nearest))
        if not nearest[best] > spacing:
            return np.array(chosen, dtype=np.intp)
        chosen.append(best)
        np.minimum(nearest, euclidean_distances(candidates, candidates[best : best + 1])[:, 0], out=nearest)


def cur_rows(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` rows of ``X`` with the largest CUR leverage scores, sorted.

    The leverage of row i is the squared norm of row i of the top-k left singular vectors
    (k = min(k, rank)), i.e. how much that environment contributes to the dominant
    subspace of the descriptor matrix (Mahoney & Drineas 2009, as gap_fit's CUR).
    """
    X = np.asarray(X, dtype=float)
    n = len(X)
    if not 1 <= k <= n:
        raise ValueError(f"cannot select {k} of {n} rows by CUR")
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    rank = int(np.sum(s > s[0] * max(X.shape) * np.finfo(float).eps)) if s.size and s[0] > 0 else 0
    top = max(1, min(k, rank))
    leverage = np.einsum("ij,ij->i", u[:, :top], u[:, :top])
    # stable order so ties (e.g. identical environments) resolve reproducibly
    return np.sort(np.argsort(-leverage, kind="stable")[:k])


__all__ = ["cur_rows", "extend_maximin", "farthest_point_sampling", "rs_maximin"]
