"""Force-prediction metrics per atom class (norm RMSE, direction angles, force RMSE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_TINY = 1e-12


def angles_deg(predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Angle in degrees between row vectors of two (n, 3) arrays.

    A zero predicted vector carries no direction and counts as 90 degrees; a zero reference
    vector gives NaN (no direction to compare with).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if predicted.shape != reference.shape or predicted.ndim != 2:
        raise ValueError(f"angles_deg needs two (n, 3) arrays of equal shape, got {predicted.shape} and {reference.shape}")
    p_norm = np.linalg.norm(predicted, axis=1)
    r_norm = np.linalg.norm(reference, axis=1)
    cos = np.einsum("ij,ij->i", predicted, reference) / np.maximum(p_norm * r_norm, _TINY)
    cos = np.where(p_norm > _TINY, np.clip(cos, -1.0, 1.0), 0.0)
    angles = np.degrees(np.arccos(cos))
    angles[r_norm <= _TINY] = np.nan
    return angles


def force_rmse(predicted: np.ndarray, reference: np.ndarray) -> float:
    """RMSE over all force components, in eV/Angstrom: sqrt(mean over atoms and x, y, z)."""
    diff = np.asarray(predicted, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    return float(np.sqrt(np.mean(diff * diff))) if diff.size else float("nan")


def class_metrics(
    predicted: np.ndarray,
    reference: np.ndarray,
    classes: Sequence[str] | np.ndarray,
    *,
    predicted_directions: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-class and overall force metrics.

    Parameters
    ----------
    predicted, reference : ndarray, shape (n, 3)
        Predicted and reference forces in eV/Angstrom.
    classes : sequence of str, length n
        Atom class of each row.
    predicted_directions : ndarray, shape (n, 3), optional
        Unit vectors to measure angles with instead of ``predicted`` (a model that predicts a
        zero norm still has a direction).

    Returns
    -------
    dict
        ``{"classes": {name: {"n", "norm_rmse", "weighted_angle_deg", "mean_angle_deg"}},
        "force_rmse": float}``. ``weighted_angle_deg`` weights each atom by its squared
        reference force norm (paper, FIG. 4); ``mean_angle_deg`` is the plain mean over atoms
        with a non-zero reference force. Norms in eV/Angstrom, angles in degrees.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    classes = np.asarray(classes)
    if predicted.shape != reference.shape or predicted.ndim != 2 or len(classes) != len(reference):
        raise ValueError(f"class_metrics: predicted {predicted.shape}, reference {reference.shape} and {len(classes)} classes do not match")
    directions = predicted if predicted_directions is None else np.asarray(predicted_directions, dtype=np.float64)
    angles = angles_deg(directions, reference)
    ref_norm = np.linalg.norm(reference, axis=1)
    pred_norm = np.linalg.norm(predicted, axis=1)
    per_class: dict[str, dict[str, float | int]] = {}
    for name in sorted(set(classes.tolist())):
        mask = classes == name
        weights = ref_norm[mask] ** 2
        a = angles[mask]
        defined = ~np.isnan(a)
        per_class[name] = {
            "n": int(mask.sum()),
            "norm_rmse": float(np.sqrt(np.mean((pred_norm[mask] - ref_norm[mask]) ** 2))),
            "weighted_angle_deg": float(np.sum(weights[defined] * a[defined]) / weights.sum()) if weights.sum() > 0 else float("nan"),
            "mean_angle_deg": float(a[defined].mean()) if defined.any() else float("nan"),
        }
    return {"classes": per_class, "force_rmse": force_rmse(predicted, reference)}


def markdown_table(metrics: dict[str, Any]) -> str:
    """Render :func:`class_metrics` output as a markdown table."""
    lines = [
        "| class | n | norm RMSE (eV/Å) | weighted angle (°) | mean angle (°) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in metrics["classes"].items():
        lines.append(f"| {name} | {m['n']} | {m['norm_rmse']:.3f} | {m['weighted_angle_deg']:.1f} | {m['mean_angle_deg']:.1f} |")
    lines.append(f"\nforce RMSE (all components): {metrics['force_rmse']:.3f} eV/Å")
    return "\n".join(lines)


def evaluate_model(model: Any, frames: Sequence[Any], *, progress: bool = True) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Predict every frame with ``model`` and score it against the frames' reference forces.

    ``model.predict(atoms)`` must return a dict with ``forces`` (n, 3) and ``classes`` (n,),
    and may give ``directions`` (n, 3). Returns the :func:`class_metrics` dict (plus
    ``n_frames``) and the concatenated per-atom arrays ``forces``, ``reference``,
    ``directions``, ``classes``.
    """
    from tqdm.auto import tqdm

    from clusterforce.data import frame_label, get_forces

    parts: dict[str, list[np.ndarray]] = {"forces": [], "reference": [], "directions": [], "classes": []}
    for position, atoms in enumerate(tqdm(frames, desc="predicting", unit="frame", disable=not progress)):
        try:
            out = model.predict(atoms)
        except ValueError as exc:
            raise ValueError(f"{frame_label(atoms, position)}: {exc}") from None
        parts["forces"].append(out["forces"])
        parts["reference"].append(get_forces(atoms))
        parts["directions"].append(out.get("directions", out["forces"]))
        parts["classes"].append(np.asarray(out["classes"]))
    arrays = {key: np.concatenate(value) for key, value in parts.items()}
    metrics = class_metrics(arrays["forces"], arrays["reference"], arrays["classes"], predicted_directions=arrays["directions"])
    metrics["n_frames"] = len(frames)
    return metrics, arrays
