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


def learning_curve(path: Path, force_rmse_before: list[float], seen: list[float], threshold: float, floor: float | None) -> Path:
    """``clusterforce learn``'s run at a glance: the model's force RMSE on each labelled structure
    before it was added (eV/Angstrom), and the largest per-atom uncertainty at every check with the
    threshold and the budget rule's floor (the kind's uncertainty units)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.plot(np.arange(1, len(force_rmse_before) + 1), force_rmse_before, ".-", lw=0.8, ms=3)
    left.set(xlabel="reference call", ylabel="force RMSE before the update (eV/Å)", title="learning curve")
    seen_arr = np.asarray(seen, dtype=float)
    right.plot(np.where(seen_arr < 1e300, seen_arr, np.nan), lw=0.6)
    right.axhline(threshold, color="C3", lw=0.8, label="threshold")
    if floor is not None:
        right.axhline(floor, color="C2", lw=0.8, ls="--", label="budget-rule floor")
    right.set(xlabel="check", ylabel="largest per-atom uncertainty", title="uncertainty over the run")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
