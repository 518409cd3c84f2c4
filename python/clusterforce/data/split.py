"""Train/test splits of frames: at random, or held out by group (size, trajectory, conformer)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Iterable, Sequence

import numpy as np
from ase import Atoms

from clusterforce.data.io import DataError, frame_label

logger = logging.getLogger(__name__)


def train_test_split_frames(frames: Sequence[Atoms], *, test_size: float | int = 0.2, seed: int = 0) -> tuple[list[Atoms], list[Atoms]]:
    """Split frames at random into train and test sets, reproducibly.

    Parameters
    ----------
    frames
        Frames to split.
    test_size
        Fraction of frames in (0, 1) (rounded up, as in scikit-learn) or a number of frames.
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed and frames give the same split.

    Returns
    -------
    (train, test)
        Lists of frames, each in the original order.
    """
    n = len(frames)
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        n_test = int(test_size)
    elif isinstance(test_size, (float, np.floating)) and 0.0 < test_size < 1.0:
        n_test = math.ceil(float(test_size) * n)
    else:
        raise ValueError(f"test_size must be a fraction in (0, 1) or a number of frames, got {test_size!r}")
    if not 0 < n_test < n:
        raise DataError(
            f"cannot split {n} frames with test_size={test_size!r}: that leaves {n - n_test} training and "
            f"{n_test} test frames; both need at least one (use more frames or another test_size)"
        )
    test_idx = np.sort(np.random.default_rng(seed).permutation(n)[:n_test])
    is_test = np.zeros(n, dtype=bool)
    is_test[test_idx] = True
    logger.info("split %d frames into %d train and %d test (seed %d)", n, n - n_test, n_test, seed)
    return _partition(frames, is_test)


def by_size(atoms: Atoms) -> int:
    """Group key for :func:`group_split`: the number of atoms."""
    return len(atoms)


def group_split(
    frames: Sequence[Atoms],
    *,
    group: str | Callable[[Atoms], Hashable],
    test_groups: Iterable[Hashable],
) -> tuple[list[Atoms], list[Atoms]]:
    """Split frames by group, e.g. hold out all clusters of one size.

    Parameters
    ----------
    frames
        Frames to split.
    group
        An ``info`` key (e.g. ``"system"``) or a callable mapping a frame to a hashable group
        value (e.g. :func:`by_size`).
    test_groups
        Group values whose frames go to the test set; every one must occur.

    Returns
    -------
    (train, test)
        Lists of frames, each in the original order.
    """
    test_groups = list(test_groups)
    if not test_groups:
        raise ValueError("test_groups is empty: name at least one group to hold out")
    keys = [_group_of(atoms, position, group) for position, atoms in enumerate(frames)]
    available = set(keys)
    unknown = [g for g in test_groups if g not in available]
    if unknown:
        raise ValueError(f"unknown test group(s) {unknown}; the frames have groups {_sorted(available)}")
    wanted = set(test_groups)
    is_test = np.array([k in wanted for k in keys], dtype=bool)
    if is_test.all():
        raise DataError(
            f"test_groups {test_groups} contain every frame, so nothing is left to train on; "
            f"hold out fewer of the groups {_sorted(available)}"
        )
    return _partition(frames, is_test)


def _group_of(atoms: Atoms, position: int, group: str | Callable[[Atoms], Hashable]) -> Hashable:
    if isinstance(group, str):
        if group not in atoms.info:
            raise DataError(
                f"{frame_label(atoms, position)}: no info['{group}'] to group by; add it to every frame "
                "or group by a function such as by_size"
            )
        key = atoms.info[group]
    else:
        key = group(atoms)
    try:
        hash(key)
    except TypeError:
        raise DataError(
            f"{frame_label(atoms, position)}: group value of type {type(key).__name__} is not hashable; group by a scalar or a string"
        ) from None
    return key


def _sorted(values: Iterable[Hashable]) -> list:
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=repr)


def _partition(frames: Sequence[Atoms], is_test: np.ndarray) -> tuple[list[Atoms], list[Atoms]]:
    train = [f for f, t in zip(frames, is_test) if not t]
    test = [f for f, t in zip(frames, is_test) if t]
    return train, test
