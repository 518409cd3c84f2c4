"""Orientation Adaptive Minimal Learning Machine: force directions (OAMLM paper, section II B).

Training (eq. 9-10 with D_out = D_c and D_g): every training point is a reference (K = N).
D_in holds Euclidean distances between the (already scaled) descriptors, D_c the cosines
``y_i . (R_ij t_j)`` between unit forces after aligning reference j onto input i, and D_g the
alignment errors g / g'. B_c and B_g solve ``D_in B = D_c`` and ``D_in B = D_g`` by ridge
regression (beta = sqrt(machine eps)).

Prediction: ``d_c = d_in B_c``; all K references are aligned onto the input; the references'
unit forces are rotated into the input frame and the direction solves the analytic loss
(eq. 15-17) or the numeric loss (eq. 14, minimised on the unit sphere from the analytic solution
and the two best-aligned references' directions), both in the compiled core LAMMPS runs too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from clusterforce import _kernels
from clusterforce.descriptors.distances import euclidean_distances
from clusterforce.kinds.dml.align import N_TRIANGLES, alignment_cosines
from clusterforce.kinds.dml.environments import Environments
from clusterforce.kinds.dml.ridge import ridge_solve

logger = logging.getLogger(__name__)

_LOSSES = ("analytic", "numeric")
#: Ridge parameter of the B_c / B_g solve (paper: square root of machine epsilon).
BETA = float(np.sqrt(np.finfo(np.float64).eps))
_STATE_ARRAYS = ("X_ref", "B_c", "B_g", "T")
_REFERENCES = "references/"


class OAMLM(BaseEstimator):
    """Force directions from distances between descriptors and aligned reference environments.

    Parameters
    ----------
    sigma1 : float
        Width of the cosine misfit in the numeric loss (eq. 14), dimensionless.
    sigma2 : float
        Width of the alignment-error weight ``exp(-(g / sigma2)^2)`` (eq. 14, 16), Angstrom.
        The paper uses 0.25 for unit gold and 0.5 otherwise.
    loss : {"analytic", "numeric"}
        Eq. 15-17 (closed form) or eq. 14 (BFGS on the unit sphere from three deterministic
        starts, since eq. 14 is multimodal: the analytic solution and the projected directions
        of the two references with the smallest alignment error).

    Attributes
    ----------
    X_ref_ : (K, F) ndarray
        Scaled descriptors of the references.
    references_ : Environments
        Their alignment records.
    T_ : (K, 3) ndarray
        Their unit forces.
    B_c_, B_g_ : (K, K) ndarray
        Weights predicting cosines and alignment errors from descriptor distances.
    n_features_in_ : int
    """

    def __init__(self, *, sigma1: float = 0.25, sigma2: float = 0.5, loss: str = "analytic"):
        self.sigma1 = sigma1
        self.sigma2 = sigma2
        self.loss = loss

    # ------------------------------------------------------------------ training
    def _check_params(self) -> None:
        if self.loss not in _LOSSES:
            raise ValueError(f"OAMLM: loss must be one of {_LOSSES}, got {self.loss!r}")
        for name in ("sigma1", "sigma2"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating)) and np.isfinite(value) and value > 0):
                raise ValueError(f"OAMLM: {name} must be a positive number, got {value!r}")

    def fit(self, X: np.ndarray, environments: Environments, forces: np.ndarray) -> OAMLM:
        """Learn B_c and B_g; every training point becomes a reference.

        Parameters
        ----------
        X : (N, F) array
            Scaled descriptors (e.g. min-max scaled SOAP) of atoms of one class.
        environments : Environments
            Their alignment records (N).
        forces : (N, 3) array
            Their forces, eV/Angstrom; only the directions are used, so none may be zero.
        """
        self._check_params()
        X = _descriptors(X, None)
        n = len(X)
        _check_environments(environments, n)
        forces = np.asarray(forces, dtype=np.float64)
        if forces.shape != (n, 3) or not np.all(np.isfinite(forces)):
            raise ValueError(f"OAMLM.fit: forces must be a finite ({n}, 3) array, got shape {forces.shape}")
        norms = np.linalg.norm(forces, axis=1)
        zero = np.flatnonzero(norms == 0)
        if zero.size:
            raise ValueError(
                f"OAMLM.fit: forces of rows {zero[:10].tolist()} are zero, so their direction is undefined; "
                "leave such atoms out of direction training"
            )
        T = forces / norms[:, None]
        D_in = euclidean_distances(X)
        D_c, D_g = alignment_cosines(environments, environments, T, T)
        W = ridge_solve(D_in, np.hstack([D_c, D_g]), BETA)
        self.X_ref_ = X.copy()
        self.references_ = environments[np.arange(n)]
        self.T_ = T
        self.B_c_ = np.ascontiguousarray(W[:, :n])
        self.B_g_ = np.ascontiguousarray(W[:, n:])
        self.n_features_in_ = X.shape[1]
        logger.debug("OAMLM fitted on %d references (%d flagged environments)", n, environments.n_flagged)
        return self

    # ---------------------------------------------------------------- prediction
    def predict_diagnostics(self, X: np.ndarray, environments: Environments) -> dict[str, np.ndarray]:
        """Directions and all per-atom uncertainty measures.

        Returns
        -------
        dict
            ``v`` (n, 3) unit directions (the model's loss: eq. 17 normalised, zero if the
            weighted projections cancel exactly, or the minimiser of eq. 14); ``spread`` (n,) in [0, 1], ``1 - |sum_j w_j d_c,j R_j t_j| /
            sum_j w_j |d_c,j|``: 0 when the weighted projections agree, 1 when they cancel;
            ``g_residual`` (n,) Angstrom, the weighted RMS difference between the alignment
            errors B_g predicts and those measured (large: the neighbourhood does not match
            the references the descriptor points to); ``weight_sum`` (n,), ``sum_j w_j`` with
            ``w_j = exp(-(g_j / sigma2)^2)`` (tiny: no reference aligns well).
        """
        check_is_fitted(self, "B_c_")
        X = _descriptors(X, self.n_features_in_)
        _check_environments(environments, len(X))
        return _kernels.oamlm_predict(
            environments.kernel_arrays(),
            self.references_.kernel_arrays(),
            euclidean_distances(X, self.X_ref_),
            self.B_c_,
            self.B_g_,
            self.T_,
            float(self.sigma2),
            N_TRIANGLES,
            self.loss,
            float(self.sigma1),
        )

    def predict(self, X: np.ndarray, environments: Environments) -> np.ndarray:
        """Unit force directions (n, 3) of atoms with scaled descriptors X and records environments."""
        return self.predict_diagnostics(X, environments)["v"]

    def predict_uncertainty(self, X: np.ndarray, environments: Environments) -> np.ndarray:
        """Direction uncertainty (n,), dimensionless in [0, 1]: the ``spread`` of
        :meth:`predict_diagnostics` (0 = all aligned references agree)."""
        return self.predict_diagnostics(X, environments)["spread"]

    # ---------------------------------------------------------------- model file
    def state_dict(self) -> dict[str, np.ndarray]:
        """Learned arrays (float64 / int64) for the model file; keys ``X_ref``, ``B_c``, ``B_g``,
        ``T`` and ``references/<field>``."""
        check_is_fitted(self, "B_c_")
        state = {"X_ref": self.X_ref_, "B_c": self.B_c_, "B_g": self.B_g_, "T": self.T_}
        state = {k: v.copy() for k, v in state.items()}
        state.update({_REFERENCES + k: v for k, v in self.references_.to_arrays().items()})
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, np.ndarray], params: Mapping) -> OAMLM:
        """Rebuild a fitted OAMLM from :meth:`state_dict` output and :meth:`get_params`."""
        # Files written before eq. 14 moved to the compiled core also carry the seed of its
        # random restarts, which no longer exist.
        model = cls(**{k: v for k, v in params.items() if k != "random_state"})
        model._check_params()
        missing = [k for k in _STATE_ARRAYS if k not in state]
        if missing:
            raise ValueError(f"OAMLM state: arrays {missing} are missing")
        refs = Environments.from_arrays(
            {k[len(_REFERENCES) :]: v for k, v in state.items() if k.startswith(_REFERENCES)},
            source="OAMLM state 'references'",
        )
        K = len(refs)
        X_ref = np.asarray(state["X_ref"], dtype=np.float64)
        expected = {"X_ref": (K, X_ref.shape[-1]), "B_c": (K, K), "B_g": (K, K), "T": (K, 3)}
        for key, shape in expected.items():
            got = np.shape(state[key])
            if got != shape:
                raise ValueError(f"OAMLM state: '{key}' has shape {got}, expected {shape} for {K} references")
        T = np.asarray(state["T"], dtype=np.float64)
        if not np.allclose(np.linalg.norm(T, axis=1), 1.0, atol=1e-9):
            raise ValueError("OAMLM state: 'T' rows must be unit vectors (reference force directions)")
        model.X_ref_ = np.ascontiguousarray(X_ref)
        model.references_ = refs
        model.T_ = np.ascontiguousarray(T)
        model.B_c_ = np.ascontiguousarray(state["B_c"], dtype=np.float64)
        model.B_g_ = np.ascontiguousarray(state["B_g"], dtype=np.float64)
        model.n_features_in_ = X_ref.shape[1]
        return model


def _descriptors(X, n_features: int | None) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or not np.all(np.isfinite(X)):
        raise ValueError(f"OAMLM: descriptors must be a finite 2-D array (atoms x features), got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"OAMLM: descriptors have {X.shape[1]} features, the model was fitted with {n_features}")
    return X


def _check_environments(environments, n: int) -> None:
    if not isinstance(environments, Environments):
        raise TypeError(f"OAMLM: environments must be an Environments, got {type(environments).__name__}")
    if len(environments) != n:
        raise ValueError(f"OAMLM: {len(environments)} environments for {n} descriptor rows")
