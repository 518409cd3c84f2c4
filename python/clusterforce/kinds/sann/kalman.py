"""Global extended Kalman filter for network weights (sann paper section II A; Singhal and Wu).

The weights theta are the filter's state with covariance P. For one structure's error vector
e = y_ref - y(theta) (here its energy and some force components, each divided by its noise scale)
and Jacobian H = dy/dtheta (m x p):

    A = H P H^T + lambda I,   K = P H^T A^-1,   theta += K e,   P = (P - K H P) / lambda,

with the forgetting factor lambda annealed towards 1 (lambda <- lambda0 lambda + 1 - lambda0), as
RuNNer does. With lambda = 1 and a large P0 it is recursive least squares: on a linear model it
reaches the least-squares solution (the check in tests/sann). Cost per update O(p^2 m), memory
O(p^2): fine for the paper's networks (a few thousand weights).
"""

from __future__ import annotations

import numpy as np


class GlobalEKF:
    """Filter over a parameter vector ``theta`` (updated in place).

    Parameters
    ----------
    theta : ndarray
        The weights (p,).
    p0 : float
        Initial covariance P = p0 I.
    forgetting, forgetting_decay : float
        lambda at the start, and lambda0 of its annealing towards 1 (1, 1: no forgetting).
    """

    def __init__(self, theta: np.ndarray, *, p0: float = 1.0, forgetting: float = 0.98, forgetting_decay: float = 0.9987) -> None:
        self.theta = theta
        self.P = np.eye(theta.size) * p0
        self.forgetting = forgetting
        self.forgetting_decay = forgetting_decay

    def update(self, jacobian: np.ndarray, error: np.ndarray) -> None:
        """One update from the Jacobian (m, p) of the predictions and their errors (m,)."""
        lam = self.forgetting
        pht = self.P @ jacobian.T
        a = jacobian @ pht + lam * np.eye(len(error))
        gain = np.linalg.solve(a, pht.T).T
        self.theta += gain @ error
        self.P -= gain @ pht.T
        self.P /= lam
        self.P = 0.5 * (self.P + self.P.T)  # keep it symmetric against round-off
        self.forgetting = self.forgetting_decay * lam + 1.0 - self.forgetting_decay
