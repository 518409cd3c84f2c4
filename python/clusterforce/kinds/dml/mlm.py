"""Minimal Learning Machine: distance regression and multilateration (eq. 9-10)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.optimize import least_squares
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from clusterforce.descriptors.distances import euclidean_distances, squared_row_norms
from clusterforce.kinds.dml.emlm import DEFAULT_BETA, distance_regression
from clusterforce.kinds.dml.ridge import ridge_solve


class MLM(RegressorMixin, BaseEstimator):
    """MLM regressor: predicts distances to output references, then multilaterates.

    Training (eq. 10) regresses output-space distances ``D_out`` (training targets to the
    output references ``T``) on input-space distances ``D_in`` (training inputs to the input
    references ``Q``): ``B = (D_inᵀD_in + βN/K I)⁻¹ D_inᵀ D_out``. Every training point is a
    reference (K = N). Prediction computes ``δ = d_inᵀ B`` and finds the output ``y`` whose
    distances to ``T`` best match ``δ``: nonlinear least squares on ``|y − t_j|² − δ_j²``
    (scipy ``least_squares``), started from the inverse-distance weighted mean of the
    ``n_outputs + 1`` references with the smallest predicted distance.

    Parameters
    ----------
    beta : float or None
        Ridge parameter β; ``None`` means sqrt(machine epsilon).

    Attributes
    ----------
    references_ : ndarray, shape (K, F)
    reference_sqnorms_ : ndarray, shape (K,)
        Squared norms of the references, reused by the distance kernel at every predict.
        Input references ``Q``.
    output_references_ : ndarray, shape (K, n_outputs)
        Output references ``T``.
    coef_ : ndarray, shape (K, K)
        ``B``.
    y_ndim_ : int
        1 if ``y`` was 1-D (predictions are then 1-D too), else 2.
    """

    def __init__(self, *, beta: float | None = None) -> None:
        self.beta = beta

    def fit(self, X: np.ndarray, y: np.ndarray) -> MLM:
        """Fit on inputs ``X`` (N, F) and targets ``y`` (N,) or (N, M)."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        beta = DEFAULT_BETA if self.beta is None else float(self.beta)
        if not (beta >= 0 and np.isfinite(beta)):
            raise ValueError(f"MLM: beta must be finite and >= 0, got {self.beta}")
        self.y_ndim_ = y.ndim
        Y = y.reshape(len(y), -1)
        self.references_ = np.ascontiguousarray(X)
        self.reference_sqnorms_ = squared_row_norms(self.references_)
        self.output_references_ = np.ascontiguousarray(Y)
        D_in = euclidean_distances(X, self.references_)
        D_out = euclidean_distances(Y, self.output_references_)
        n, k = D_in.shape
        self.coef_ = ridge_solve(D_in, D_out, beta * n / k)
        return self

    def predict_distances(self, X: np.ndarray) -> np.ndarray:
        """Predicted distances ``δ`` (n, K) from each output to the output references."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return distance_regression(X, self.references_, self.reference_sqnorms_, self.coef_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predict targets for inputs ``X`` (n, F) by multilateration."""
        delta = np.maximum(self.predict_distances(X), 0.0)
        T = self.output_references_
        n_out = T.shape[1]
        method = "lm" if T.shape[0] >= n_out else "trf"
        n_start = min(n_out + 1, T.shape[0])
        out = np.empty((delta.shape[0], n_out))
        for i, d in enumerate(delta):
            d2 = d * d
            nearest = np.argpartition(d, n_start - 1)[:n_start]
            w = 1.0 / np.maximum(d[nearest], 1e-12)
            start = (w @ T[nearest]) / w.sum()
            fit = least_squares(
                lambda y, d2=d2: ((y - T) ** 2).sum(axis=1) - d2,
                start,
                jac=lambda y: 2.0 * (y - T),
                method=method,
            )
            out[i] = fit.x
        return out[:, 0] if self.y_ndim_ == 1 else out

    def state_dict(self) -> dict[str, np.ndarray]:
        """Learned arrays, for the model file."""
        check_is_fitted(self, "coef_")
        return {
            "references": self.references_,
            "output_references": self.output_references_,
            "coef": self.coef_,
            "y_ndim": np.array(self.y_ndim_),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray], params: Mapping[str, Any] | None = None) -> MLM:
        """Rebuild a fitted MLM from :meth:`state_dict` output and :meth:`get_params` output."""
        model = cls(**dict(params or {}))
        model.references_ = np.ascontiguousarray(state["references"], dtype=np.float64)
        model.reference_sqnorms_ = squared_row_norms(model.references_)
        model.output_references_ = np.ascontiguousarray(state["output_references"], dtype=np.float64)
        model.coef_ = np.asarray(state["coef"], dtype=np.float64)
        model.y_ndim_ = int(state["y_ndim"])
        k = model.references_.shape[0]
        if model.coef_.shape != (k, k) or model.output_references_.shape[0] != k:
            raise ValueError(
                f"MLM state: expected coef ({k}, {k}) and {k} output references, got coef "
                f"{model.coef_.shape} and {model.output_references_.shape[0]} output references"
            )
        model.n_features_in_ = model.references_.shape[1]
        return model
