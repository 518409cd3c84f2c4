"""The sann network (paper eq. 7): descriptor -> sigmoid -> sigmoid -> linear energy, in numpy.

Parameters live in one flat vector ``theta`` (W1, b1, W2, b2, w3, b3), as the global extended
Kalman filter updates them. Besides the energy and its parameter gradient, the decoupled forces
(paper eq. 12) need the directional derivative of the network along a descriptor-space vector v,
E_dot = dE/dz . v, and its parameter gradient (forward-mode through the network, then reverse):
that is what a force component's row of the Kalman Jacobian is. The compiled ``Mlp``
(``cpp/include/clusterforce/mlp.hpp``, sigmoid) evaluates the same network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit


def _sigmoid(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = expit(x)
    d1 = s * (1.0 - s)
    return s, d1, d1 * (1.0 - 2.0 * s)


class SannNetwork:
    """Layer sizes (n_in, h1, h2); Kaiming-style initialisation from ``rng``."""

    def __init__(self, n_in: int, hidden: Sequence[int], rng: np.random.Generator) -> None:
        if len(hidden) != 2:
            raise ValueError(f"sann uses two hidden layers (paper eq. 7), got {list(hidden)}")
        h1, h2 = hidden
        self.shapes = [(h1, n_in), (h1,), (h2, h1), (h2,), (1, h2), (1,)]
        parts = [rng.normal(0.0, np.sqrt(1.0 / s[1]), size=s) if len(s) == 2 else np.zeros(s) for s in self.shapes]
        self.theta = np.concatenate([p.ravel() for p in parts])

    @property
    def n_params(self) -> int:
        return self.theta.size

    def unpack(self, theta: np.ndarray | None = None) -> list[np.ndarray]:
        theta = self.theta if theta is None else theta
        out, i = [], 0
        for s in self.shapes:
            n = int(np.prod(s))
            out.append(theta[i : i + n].reshape(s))
            i += n
        return out

    def energy(self, z: np.ndarray) -> np.ndarray:
        """Network output for descriptor rows z (K, n_in)."""
        w1, b1, w2, b2, w3, b3 = self.unpack()
        h1 = _sigmoid(z @ w1.T + b1)[0]
        return (_sigmoid(h1 @ w2.T + b2)[0] @ w3.T + b3)[:, 0]

    def energy_rows(self, z: np.ndarray) -> np.ndarray:
        """d output / d theta for every row of z: (K, n_params)."""
        w1, b1, w2, b2, w3, b3 = self.unpack()
        a1 = z @ w1.T + b1
        h1, s1, _ = _sigmoid(a1)
        h2, s2, _ = _sigmoid(h1 @ w2.T + b2)
        d2 = w3[0] * s2
        d1 = (d2 @ w2) * s1
        k = len(z)
        return np.concatenate(
            [
                (d1[:, :, None] * z[:, None, :]).reshape(k, -1),
                d1,
                (d2[:, :, None] * h1[:, None, :]).reshape(k, -1),
                d2,
                h2,
                np.ones((k, 1)),
            ],
            axis=1,
        )

    def input_gradient(self, z: np.ndarray) -> np.ndarray:
        """d output / d z for every row of z: (K, n_in); E_dot = input_gradient . v."""
        w1, b1, w2, b2, w3, _ = self.unpack()
        h1, s1, _ = _sigmoid(z @ w1.T + b1)
        s2 = _sigmoid(h1 @ w2.T + b2)[1]
        return (((w3[0] * s2) @ w2) * s1) @ w1

    def directional_rows(self, z: np.ndarray, v: np.ndarray) -> np.ndarray:
        """d E_dot / d theta for every row: (K, n_params)."""
        w1, b1, w2, b2, w3, _ = self.unpack()
        a1 = z @ w1.T + b1
        h1, s1, t1 = _sigmoid(a1)
        _, s2, t2 = _sigmoid(h1 @ w2.T + b2)
        a1_dot = v @ w1.T
        h1_dot = s1 * a1_dot
        a2_dot = h1_dot @ w2.T
        h2_dot = s2 * a2_dot
        q2 = w3[0] * t2 * a2_dot  # d E_dot / d a2
        p2 = w3[0] * s2  # d E_dot / d a2_dot
        dh1, dh1_dot = q2 @ w2, p2 @ w2
        da1 = dh1 * s1 + dh1_dot * t1 * a1_dot
        da1_dot = dh1_dot * s1
        k = len(z)
        gw1 = (da1[:, :, None] * z[:, None, :] + da1_dot[:, :, None] * v[:, None, :]).reshape(k, -1)
        gw2 = (q2[:, :, None] * h1[:, None, :] + p2[:, :, None] * h1_dot[:, None, :]).reshape(k, -1)
        return np.concatenate([gw1, da1, gw2, q2, h2_dot, np.zeros((k, 1))], axis=1)

    def layers(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(weights, biases) per layer in the compiled Mlp's layout."""
        w1, b1, w2, b2, w3, b3 = self.unpack()
        return [w1, w2, w3], [b1, b2, b3]
