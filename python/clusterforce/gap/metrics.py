"""Energy and force error metrics in the units the papers report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
