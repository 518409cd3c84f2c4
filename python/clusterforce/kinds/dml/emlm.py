"""Extreme Minimal Learning Machine: ridge regression on distances to references (eq. 6-8)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from clusterforce.descriptors.distances import euclidean_distances, squared_row_norms
from clusterforce.kinds.dml.ridge import ridge_solve

#: Paper default for the ridge parameter: the square root of machine epsilon.
DEFAULT_BETA = float(np.sqrt(np.finfo(np.float64).eps))
#: Distance rows computed at once by :func:`distance_regression` (bounds memory to ~64 MB).
_CHUNK_ELEMENTS = 2**23


def distance_regression(X: np.ndarray, references: np.ndarray, sqnorms: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``D(X, references) @ W`` with distances from the compiled kernel, in row chunks so
    that the (n, K) distance matrix never exists at once for large ``n``."""
    rows = max(1, _CHUNK_ELEMENTS // max(1, len(references)))
    out = np.empty((len(X),) + W.shape[1:])
    for start in range(0, len(X), rows):
        block = X[start : start + rows]
        out[start : start + rows] = euclidean_distances(block, references, Y_sqnorms=sqnorms) @ W
    return out


class EMLM(RegressorMixin, BaseEstimator):
    """EMLM regressor: ``y(x) = d(x)ᵀ W`` with ``d`` the distances from ``x`` to K references.

    Every training point becomes a reference (K = N), as in the paper, where the caller picks
    the training points with :func:`clusterforce.descriptors.selection.rs_maximin`. ``W`` minimises
    eq. 6, ``1/(2N) Σ|dᵢᵀW − yᵢ|² + β/(2K) Σ W²``, i.e. ``(DᵀD + βN/K I) W = DᵀY``.

    Parameters
    ----------
    beta : float or None
        Ridge parameter β; ``None`` means sqrt(machine epsilon).
    clip : bool
        Clip predictions to the range of the training targets (per output). ``dᵀW`` is linear
        in the distances, so away from the data it grows without bound; for force norms this
        gave 10⁴ eV/Angstrom in optimisations that left the training distribution.

    Attributes
    ----------
    references_ : ndarray, shape (K, F)
    reference_sqnorms_ : ndarray, shape (K,)
        Squared norms of the references, reused by the distance kernel at every predict.
    coef_ : ndarray, shape (K,) or (K, n_outputs)
        ``W``; 1-D when ``y`` was 1-D.
    output_range_ : ndarray, shape (2,) or (2, n_outputs)
        Smallest and largest training target, the bounds used by ``clip``.
    """

    def __init__(self, *, beta: float | None = None, clip: bool = True) -> None:
        self.beta = beta
        self.clip = clip

    def fit(self, X: np.ndarray, y: np.ndarray) -> EMLM:
        """Fit on descriptors ``X`` (N, F) and targets ``y`` (N,) or (N, M)."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        beta = DEFAULT_BETA if self.beta is None else float(self.beta)
        if not (beta >= 0 and np.isfinite(beta)):
            raise ValueError(f"EMLM: beta must be finite and >= 0, got {self.beta}")
        self.references_ = np.ascontiguousarray(X)
        self.reference_sqnorms_ = squared_row_norms(self.references_)
        D = euclidean_distances(X, self.references_)
        n, k = D.shape
        self.coef_ = ridge_solve(D, y, beta * n / k)
        self.output_range_ = np.stack([y.min(axis=0), y.max(axis=0)])
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict targets for descriptors ``X`` (n, F), same units as ``y``."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        y = distance_regression(X, self.references_, self.reference_sqnorms_, self.coef_)
        if self.clip:
            np.clip(y, self.output_range_[0], self.output_range_[1], out=y)
        return y

    def state_dict(self) -> dict[str, np.ndarray]:
        """Learned arrays, for the model file."""
        check_is_fitted(self, "coef_")
        return {"references": self.references_, "coef": self.coef_, "output_range": self.output_range_}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None) -> EMLM:
        """Rebuild a fitted EMLM from :meth:`state_dict` output and :meth:`get_params` output."""
        model = cls(**dict(params or {}))
        model.references_ = np.ascontiguousarray(state["references"], dtype=np.float64)
        model.reference_sqnorms_ = squared_row_norms(model.references_)
        model.coef_ = np.asarray(state["coef"], dtype=np.float64)
        # Files written before output_range existed predict unclipped.
        unbounded = np.array([-np.inf, np.inf]).reshape((2,) + (1,) * (model.coef_.ndim - 1))
        model.output_range_ = np.asarray(state.get("output_range", unbounded), dtype=np.float64)
        if model.coef_.shape[0] != model.references_.shape[0]:
            raise ValueError(f"EMLM state: coef has {model.coef_.shape[0]} rows but there are {model.references_.shape[0]} references")
        model.n_features_in_ = model.references_.shape[1]
        return model
