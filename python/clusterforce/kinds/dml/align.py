"""SVD (Arun/Kabsch) alignment of local environments (OAMLM paper, eqs. 11-13 and 18).

Thin typed wrappers around ``cpp/include/clusterforce/align.hpp``. Rotations map a reference
environment onto an input environment (``p ~ R s``) and are always proper (det R = +1), so
``R @ t`` is a reference's unit force expressed in the input's frame. When the aligned points
leave a spin about one axis free (a neighbourhood of a single atom, collinear anchors) the
returned map is the spin average ``(a . t) R a`` instead, and zero when all points sit on the
centre: this keeps OAMLM rotation-equivariant in such degraded environments. Alignment errors are
``g`` (eq. 12, Angstrom) for the H, C, S and unit-gold schemes and ``g'`` (eq. 13, Angstrom,
over the larger neighbour cloud) for core gold and the generic scheme.
"""

from __future__ import annotations

import numpy as np

from clusterforce import _kernels
from clusterforce.kinds.dml.environments import Environments

#: Triangles kept by the eq. 18 prefilter before SVD in the pair-search schemes (paper: 10).
N_TRIANGLES = 10


def svd3(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SVD of a 3x3 matrix by one-sided Jacobi: ``A = U @ diag(s) @ V.T``, s descending.

    U and V are orthogonal (their determinants may be -1); singular vectors of zero singular
    values are completed deterministically.
    """
    return _kernels.svd3(np.asarray(A, dtype=np.float64))


def kabsch(p: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Proper rotation R minimising ``sum_k |p_k - R s_k|^2``.

    Parameters
    ----------
    p, s : (m, 3) arrays
        Input and reference points relative to their centre atoms (Angstrom); no centroid is
        removed, the centre atoms coincide.
    """
    return _kernels.kabsch(np.asarray(p, dtype=np.float64), np.asarray(s, dtype=np.float64))


def _check(envs: Environments, what: str) -> dict[str, np.ndarray]:
    if not isinstance(envs, Environments):
        raise TypeError(f"{what} must be an Environments, got {type(envs).__name__}")
    return envs.kernel_arrays()


def align(
    inputs: Environments,
    refs: Environments,
    *,
    n_triangles: int = N_TRIANGLES,
    rotations: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Best alignment of every reference onto every input.

    Parameters
    ----------
    inputs, refs : Environments
        Records of one class (N inputs, K references).
    n_triangles : int
        Triangles kept by the eq. 18 prefilter; 0 tries every ordered neighbour pair.
    rotations : bool
        Also return the rotations (N*K*9 doubles: for small cases and tests).

    Returns
    -------
    g : (N, K) ndarray
        Alignment error g or g' of the best alignment, Angstrom.
    R : (N, K, 3, 3) ndarray or None
        Rotations mapping reference j onto input i (spin-averaged maps for degenerate
        alignments, see the module docstring).
    """
    return _kernels.align(_check(inputs, "inputs"), _check(refs, "refs"), int(n_triangles), bool(rotations))


def alignment_cosines(
    inputs: Environments,
    refs: Environments,
    input_unit_forces: np.ndarray,
    ref_unit_forces: np.ndarray,
    *,
    n_triangles: int = N_TRIANGLES,
) -> tuple[np.ndarray, np.ndarray]:
    """OAMLM training matrices without storing N x K rotations.

    Returns
    -------
    D_c : (N, K) ndarray
        ``y_i . (R_ij t_j)``, cosines between input unit forces and aligned reference ones.
    D_g : (N, K) ndarray
        Alignment error g or g' of the same best alignment, Angstrom.
    """
    return _kernels.alignment_cosines(
        _check(inputs, "inputs"),
        _check(refs, "refs"),
        np.asarray(input_unit_forces, dtype=np.float64),
        np.asarray(ref_unit_forces, dtype=np.float64),
        int(n_triangles),
    )
