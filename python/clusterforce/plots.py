"""Plots shared by the energy-model kinds (matplotlib, Agg backend): parity of energies and forces."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def parity_plots(out: Path, pred_e, ref_e, n_atoms, pred_f, ref_f, *, model_name: str = "model") -> list[Path]:
    """Predicted vs reference energy per atom (eV/atom) and force components (eV/Angstrom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    panels = []
    if ref_e:
        n = np.asarray(n_atoms, dtype=float)
        panels.append(("energy_parity.png", np.asarray(ref_e) / n, np.asarray(pred_e) / n, "energy (eV/atom)"))
    if ref_f:
        panels.append(
            (
                "force_parity.png",
                np.concatenate([np.ravel(f) for f in ref_f]),
                np.concatenate([np.ravel(f) for f in pred_f]),
                "force component (eV/Å)",
            )
        )
    for name, ref, pred, label in panels:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(ref, pred, s=4, alpha=0.5, linewidths=0)
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
        ax.set(xlabel=f"reference {label}", ylabel=f"{model_name} {label}", title=f"RMSE {rmse:.4g}")
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
        written.append(out / name)
    return written
