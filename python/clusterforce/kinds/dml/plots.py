"""Density plots of force predictions per atom class (paper FIG. 3 and FIG. 4)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _grid(n_panels: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(n_panels, 3)
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return plt, fig, axes.ravel()


def _classes(classes: Sequence[str] | np.ndarray) -> tuple[np.ndarray, list[str]]:
    classes = np.asarray(classes)
    return classes, sorted(set(classes.tolist()))


def plot_norm_parity(
    reference_norms: np.ndarray,
    predicted_norms: np.ndarray,
    classes: Sequence[str] | np.ndarray,
    path: str | Path,
) -> Path:
    """Predicted vs reference force norm (eV/Angstrom), one hexbin density panel per class.

    Writes a PNG to ``path`` and returns it.
    """
    classes, names = _classes(classes)
    plt, fig, axes = _grid(len(names))
    for ax, name in zip(axes, names):
        mask = classes == name
        ref, pred = reference_norms[mask], predicted_norms[mask]
        top = float(max(ref.max(), pred.max(), 1e-3))
        ax.hexbin(ref, pred, gridsize=40, bins="log", mincnt=1, cmap="viridis", extent=(0, top, 0, top))
        ax.plot([0, top], [0, top], color="0.4", lw=0.8)
        rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
        ax.set_title(name)
        ax.text(0.04, 0.92, f"RMSE {rmse:.3f} eV/Å\nn = {mask.sum()}", transform=ax.transAxes, va="top", fontsize=9)
        ax.set_xlabel("reference |F| (eV/Å)")
        ax.set_ylabel("predicted |F| (eV/Å)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_angle_vs_norm(
    reference_norms: np.ndarray,
    angles_deg: np.ndarray,
    classes: Sequence[str] | np.ndarray,
    path: str | Path,
) -> Path:
    """Angle between predicted and reference force (degrees) vs reference norm, per class.

    Atoms whose angle is undefined (NaN: zero reference force) are left out. Each panel notes
    the |F|²-weighted average angle ("w. a.", as in the paper). Writes a PNG and returns it.
    """
    classes, names = _classes(classes)
    plt, fig, axes = _grid(len(names))
    for ax, name in zip(axes, names):
        mask = (classes == name) & ~np.isnan(angles_deg)
        ref, ang = reference_norms[mask], angles_deg[mask]
        top = float(max(ref.max(), 1e-3)) if mask.any() else 1.0
        if mask.any():
            ax.hexbin(ref, ang, gridsize=40, bins="log", mincnt=1, cmap="viridis", extent=(0, top, 0, 180))
            wa = float(np.sum(ref**2 * ang) / max(np.sum(ref**2), 1e-300))
            ax.text(0.55, 0.92, f"w. a. {wa:.1f}°", transform=ax.transAxes, va="top", fontsize=9)
        ax.set_ylim(0, 180)
        ax.set_title(name)
        ax.set_xlabel("reference |F| (eV/Å)")
        ax.set_ylabel("angle (°)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
