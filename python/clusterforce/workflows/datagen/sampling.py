"""Which MD steps of a heating run are recorded: log-spaced, dense toward the hot end.

Like the oamlm paper (section III A), frames are sampled sparsely early in the heating and
densely late, where the structure changes most. With ``S`` MD steps, ``N`` frames and a
density ratio ``rho`` (how much denser sampling is at the last step than at the first):

* offsets back from the last step: ``g_k = a * (rho**(k / (N - 1)) - 1)`` for
  ``k = 0 .. N-1`` with ``a = (S - 1) / (rho - 1)``, so ``g_0 = 0`` and ``g_{N-1} = S - 1``;
* rounded and made strictly increasing: ``o_0 = 0``,
  ``o_k = min(max(round(g_k), o_{k-1} + 1), S - N + k)``;
* recorded steps ``S - o_k`` (1-based; step ``s`` is the state after ``s`` MD steps), sorted.

The last step ``S`` is always recorded and exactly ``N`` distinct steps are returned.
``rho = 1`` gives evenly spaced frames; ``rho = S`` gives ``g_k = S**(k/(N-1)) - 1``, the
paper's plain logarithmic spacing (which degenerates to consecutive steps at the end when N
is a sizeable fraction of S).
"""

from __future__ import annotations

import numpy as np


def record_steps(total_steps: int, frames: int, density_ratio: float = 10.0) -> np.ndarray:
    """Return the sorted 1-based MD steps at which frames are recorded.

    Parameters
    ----------
    total_steps : int
        Number of MD steps of the run, ``S >= 1``.
    frames : int
        Number of frames to record, ``1 <= N <= S``.
    density_ratio : float
        Sampling density at the last step divided by that at the first step, ``>= 1``.

    Returns
    -------
    numpy.ndarray of int
        ``N`` distinct steps in ``[1, S]``, ending with ``S``.
    """
    if total_steps < 1:
        raise ValueError(f"the run needs at least one MD step, got {total_steps} steps")
    if not 1 <= frames <= total_steps:
        raise ValueError(f"--frames must be between 1 and the number of MD steps ({total_steps}), got {frames}")
    if not density_ratio >= 1.0:
        raise ValueError(f"--density-ratio must be >= 1 (1 = evenly spaced), got {density_ratio}")
    if frames == 1:
        return np.array([total_steps])
    k = np.arange(frames) / (frames - 1)
    span = total_steps - 1
    if density_ratio == 1.0:
        ideal = k * span
    else:
        ideal = span / (density_ratio - 1.0) * (density_ratio**k - 1.0)
    offsets = np.empty(frames, dtype=np.int64)
    offsets[0] = 0
    for i in range(1, frames):
        offsets[i] = min(max(int(round(ideal[i])), offsets[i - 1] + 1), total_steps - frames + i)
    return np.sort(total_steps - offsets)
