"""Reference selection for distance-based models."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state


def rs_maximin(X: np.ndarray, k: int, *, random_state=None) -> np.ndarray:
    """Pick ``k`` rows of ``X`` by RS-maximin: a random start, then farthest-point sampling.

    Each new point is the one whose Euclidean distance to the already chosen set is largest,
    so the references spread over the descriptor space instead of crowding where data are
    dense.

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
    rng = check_random_state(random_state)
    sqnorms = np.einsum("ij,ij->i", X, X)
    chosen = np.empty(int(k), dtype=np.intp)
    chosen[0] = rng.randint(n)
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
