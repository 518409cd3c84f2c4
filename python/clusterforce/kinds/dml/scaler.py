"""Min-max feature scaling of descriptor vectors (the scaling EMLM and OAMLM distances use)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted


class MinMaxScaler(BaseEstimator):
    """Scale each feature to [0, 1] by the training minimum and maximum.

    ``transform(X) = (X - data_min_) * scale_`` with ``scale_ = 1 / (data_max_ - data_min_)``.
    A feature that is constant in the training data gets ``scale_ = 1`` (as in scikit-learn),
    so it maps to 0 without a division by zero and ``inverse_transform`` stays exact.
    Values outside the training range map outside [0, 1]; they are not clipped.

    Attributes
    ----------
    data_min_, data_max_ : ndarray of shape (n_features,)
        Per-feature minimum and maximum seen in ``fit``.
    scale_ : ndarray of shape (n_features,)
        Per-feature multiplier.
    n_features_in_ : int
        Number of features seen in ``fit``.
    """

    def fit(self, X: np.ndarray, y: None = None) -> MinMaxScaler:
        """Learn the per-feature minimum and maximum of ``X`` (n_samples, n_features)."""
        X = self._check_array(X, "fit")
        if X.shape[0] == 0:
            raise ValueError("MinMaxScaler.fit: X has 0 samples; need at least one row")
        self.data_min_ = X.min(axis=0)
        self.data_max_ = X.max(axis=0)
        self.scale_ = _scale_from_range(self.data_max_ - self.data_min_)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scale ``X`` (n_samples, n_features) into the fitted range; returns a new array."""
        check_is_fitted(self)
        X = self._check_array(X, "transform")
        return (X - self.data_min_) * self.scale_

    def fit_transform(self, X: np.ndarray, y: None = None) -> np.ndarray:
        """Fit to ``X`` and return it scaled."""
        return self.fit(X).transform(X)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`; returns a new array."""
        check_is_fitted(self)
        X = self._check_array(X, "inverse_transform")
        return X / self.scale_ + self.data_min_

    def state_dict(self) -> dict[str, np.ndarray]:
        """Fitted state as float64 arrays, for storing in a model file."""
        check_is_fitted(self)
        return {
            "data_min": self.data_min_.copy(),
            "data_max": self.data_max_.copy(),
            "scale": self.scale_.copy(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, np.ndarray]) -> MinMaxScaler:
        """Rebuild a fitted scaler from :meth:`state_dict` output."""
        missing = [k for k in ("data_min", "data_max", "scale") if k not in state]
        if missing:
            raise ValueError(f"MinMaxScaler state is missing {missing}; it has keys {sorted(state)}")
        arrays = {k: np.asarray(state[k], dtype=np.float64) for k in ("data_min", "data_max", "scale")}
        shapes = {k: a.shape for k, a in arrays.items()}
        if len(set(shapes.values())) != 1 or arrays["data_min"].ndim != 1:
            raise ValueError(f"MinMaxScaler state arrays must be 1-D and of equal length, got shapes {shapes}")
        for key, a in arrays.items():
            if not np.isfinite(a).all():
                raise ValueError(f"MinMaxScaler state '{key}' contains non-finite values")
        if not np.allclose(arrays["scale"], _scale_from_range(arrays["data_max"] - arrays["data_min"])):
            raise ValueError("MinMaxScaler state 'scale' does not match 1 / (data_max - data_min)")
        scaler = cls()
        scaler.data_min_ = arrays["data_min"].copy()
        scaler.data_max_ = arrays["data_max"].copy()
        scaler.scale_ = arrays["scale"].copy()
        scaler.n_features_in_ = arrays["data_min"].shape[0]
        return scaler

    def _check_array(self, X: np.ndarray, where: str) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"MinMaxScaler.{where}: X must be 2-D (n_samples, n_features), got shape {X.shape}")
        n_features = getattr(self, "n_features_in_", None)
        if where != "fit" and X.shape[1] != n_features:
            raise ValueError(f"MinMaxScaler.{where}: X has {X.shape[1]} features, the scaler was fitted on {n_features}")
        if not np.isfinite(X).all():
            raise ValueError(f"MinMaxScaler.{where}: X contains NaN or infinite values")
        return X


def _scale_from_range(data_range: np.ndarray) -> np.ndarray:
    return 1.0 / np.where(data_range > 0, data_range, 1.0)
