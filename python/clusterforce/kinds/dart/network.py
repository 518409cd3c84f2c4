"""Dense networks trained in numpy: forward pass and back-propagation (Adam: :mod:`clusterforce.kinds.adam`).

Same convention as the compiled ``Mlp`` (``cpp/include/clusterforce/mlp.hpp``): layer l maps h to
``h @ W_l.T + b_l`` with W_l of shape (n_out, n_in); every layer but the last is followed by CELU
(alpha = 1). Small networks need no deep-learning framework; numpy keeps the install light and
the gradients explicit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def celu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def dcelu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0)))


class Mlp:
    """Weights ``W`` and biases ``b`` of a dense network with layer sizes ``sizes`` (Kaiming init)."""

    def __init__(self, sizes: Sequence[int], rng: np.random.Generator) -> None:
        self.W = [rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(n_out) for n_out in sizes[1:]]

    @property
    def params(self) -> list[np.ndarray]:
        return [*self.W, *self.b]

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Output for rows x (m, n_in), and the cache back-propagation needs."""
        cache = [x]
        h = x
        for layer, (w, b) in enumerate(zip(self.W, self.b)):
            pre = h @ w.T + b
            cache.append(pre)
            h = celu(pre) if layer + 1 < len(self.W) else pre
        return h, cache

    def backward(self, cache: list[np.ndarray], grad_out: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Gradients of a loss with respect to the parameters (in ``params`` order) and to the
        input, given its gradient with respect to the output."""
        n = len(self.W)
        gw, gb = [None] * n, [None] * n
        g = grad_out
        for layer in range(n - 1, -1, -1):
            if layer + 1 < n:
                g = g * dcelu(cache[layer + 1])
            h_in = cache[0] if layer == 0 else celu(cache[layer])
            gw[layer] = g.T @ h_in
            gb[layer] = g.sum(axis=0)
            g = g @ self.W[layer]
        return [*gw, *gb], g
