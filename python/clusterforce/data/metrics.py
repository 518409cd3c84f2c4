"""Energy and force error metrics in the units the papers report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from tqdm.auto import tqdm

from clusterforce.data import get_energy, get_forces


def collect_predictions(model: Any, frames: Sequence[Atoms], *, progress: bool = True) -> tuple[list, list, list, list, list]:
    """Predict every frame; returns (pred_energy, ref_energy, n_atoms, pred_forces, ref_forces)
    over the frames that carry a reference energy / forces."""
    pred_e, ref_e, n_atoms, pred_f, ref_f = [], [], [], [], []
    for a in tqdm(frames, desc="predicting", disable=not progress, leave=False):
        p = model.predict(a)
        e, f = get_energy(a), get_forces(a)
        if e is not None:
            pred_e.append(p["energy"])
            ref_e.append(e)
            n_atoms.append(len(a))
        if f is not None:
            pred_f.append(p["forces"])
            ref_f.append(f)
    return pred_e, ref_e, n_atoms, pred_f, ref_f


def energy_force_metrics(
    pred_energy: Sequence[float],
    ref_energy: Sequence[float],
    n_atoms: Sequence[int],
    pred_forces: Sequence[np.ndarray],
    ref_forces: Sequence[np.ndarray],
) -> dict[str, float | int | None]:
    """RMSE / MAE of energies per atom (meV/atom) and of force components (eV/Angstrom).

    Force errors pool every Cartesian component of every atom of every frame. A metric
    without data is None.
    """
    out: dict[str, float | int | None] = {
        "energy_rmse_mev_per_atom": None,
        "energy_mae_mev_per_atom": None,
        "force_rmse": None,
        "force_mae": None,
        "n_energies": len(ref_energy),
        "n_force_frames": len(ref_forces),
    }
    if len(ref_energy):
        de = 1000.0 * (np.asarray(pred_energy) - np.asarray(ref_energy)) / np.asarray(n_atoms)
        out["energy_rmse_mev_per_atom"] = float(np.sqrt(np.mean(de**2)))
        out["energy_mae_mev_per_atom"] = float(np.mean(np.abs(de)))
    if len(ref_forces):
        df = np.concatenate([np.asarray(p).reshape(-1) - np.asarray(r).reshape(-1) for p, r in zip(pred_forces, ref_forces)])
        out["force_rmse"] = float(np.sqrt(np.mean(df**2)))
        out["force_mae"] = float(np.mean(np.abs(df)))
    return out


def print_table(report: dict[str, Any]) -> None:
    """Print a metrics report (name -> number) as a two-column markdown table; ``kind`` is skipped."""
    print("| metric | value |\n|---|---:|")
    for key, value in report.items():
        if key != "kind":
            print(f"| {key} | {value if value is None or isinstance(value, int) else f'{value:.4g}'} |")
