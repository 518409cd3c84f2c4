"""The training domain a frame's out-of-domain score is scaled to (every kind, one contract).

``predict`` (and the ASE calculator) of a model whose file holds this reference returns
``domain_score`` (1 = the edge of the training domain, larger = farther out), ``outside_domain``
(score > 1) and ``domain_parts``, computed per structure in C++ (``clusterforce/domain.hpp``):

- ``uncertainty``: the frame's largest per-atom uncertainty (eV/Angstrom) over
  ``uncertainty_limit``, the value that :data:`FALSE_POSITIVE_RATE` of frames the model did not
  train on exceed (a log-normal fitted at fit time to those frames' largest uncertainties: gap its
  left-out calibration groups, sann its validation frames; dml keeps no held-out frames, so its
  limit comes from training frames, which it predicts somewhat better than new ones; dart has no
  uncertainty). Only when the prediction carries uncertainties.
- ``packing``: per element, the frame's mean nearest-neighbour distance ``m`` against its mean
  ``mu`` and standard deviation ``sd`` over the training frames, ``|m - mu| / (z sd)`` with ``z``
  the two-sided normal quantile of :data:`FALSE_POSITIVE_RATE`: stretched, squeezed, denser or
  sparser packing than trained on.
- ``short_pair``: the largest ``r_min / r`` over pairs (``r_min`` the shortest training distance of
  the pair's elements; above 1 where the per-atom ``extrapolating`` flag fires).

Stored as the array ``domain/packing`` (n_species x 2: mu, sd in Angstrom) and the metadata
``domain`` (docs/model-file.md); files without them predict as before, with no score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from scipy.stats import norm

from clusterforce import _kernels
from clusterforce.core import modelfile
from clusterforce.data import frame_label, species_indices

#: Model-file array of the training range of the mean nearest-neighbour distance per element.
PACKING_FIELD = "domain/packing"
#: Nearest neighbours are searched this far (Angstrom); an atom with none counts as this distance.
RADIUS = 6.0
#: Share of in-domain frames each of the uncertainty and packing parts is set to call outside.
FALSE_POSITIVE_RATE = 0.01
#: Smallest standard deviation (Angstrom) of the packing: frames that barely vary (or one frame)
#: would otherwise call any change of density outside.
PACKING_SD_FLOOR = 0.01
#: Keys of ``predict``'s result that come with the score.
RESULT_KEYS = ("domain_score", "outside_domain", "domain_parts")


def mean_nearest_neighbour(atoms: Atoms, species: np.ndarray, n_species: int) -> np.ndarray:
    """Per species, the mean nearest-neighbour distance (Angstrom) of its atoms in ``atoms``
    (NaN for a species absent), through the C++ function the score uses."""
    periodic = bool(np.any(atoms.pbc))
    cell = np.array(atoms.cell[:], dtype=float) if periodic else None
    pbc = tuple(bool(p) for p in atoms.pbc) if periodic else None
    return _kernels.mean_nearest_neighbour(np.asarray(atoms.positions, dtype=float), species, n_species, RADIUS, cell, pbc)


def _packing_values(frames: Sequence[Atoms], elements: Sequence[str]) -> np.ndarray:
    """(n_frames, n_species) mean nearest-neighbour distances (Angstrom; NaN: element absent)."""
    rows = [mean_nearest_neighbour(a, species_indices(a, elements, label=frame_label(a, i)), len(elements)) for i, a in enumerate(frames)]
    return np.array(rows, dtype=float).reshape(-1, len(elements))


def _packing_table(count: np.ndarray, total: np.ndarray, total_sq: np.ndarray) -> np.ndarray:
    """(n_species, 2): mean and floored standard deviation from per-species sums (NaN: no frame)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
        sd = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return np.stack([mean, np.where(count > 0, np.maximum(sd, PACKING_SD_FLOOR), np.nan)], axis=1)


def _sums(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    seen = np.isfinite(values)
    return seen.sum(axis=0).astype(float), np.where(seen, values, 0.0).sum(axis=0), np.where(seen, values**2, 0.0).sum(axis=0)


def uncertainty_limit(values: Sequence[float]) -> float:
    """The largest per-atom uncertainty (eV/Angstrom) that :data:`FALSE_POSITIVE_RATE` of frames
    like ``values`` (each a frame's largest) exceed: a log-normal fitted to them (one value: itself)."""
    logs = np.log(np.asarray(values, dtype=float))
    spread = float(np.std(logs, ddof=1)) if logs.size > 1 else 0.0
    return float(np.exp(logs.mean() + norm.ppf(1 - FALSE_POSITIVE_RATE) * spread))


def reference(
    frames: Sequence[Atoms], elements: Sequence[str], frame_uncertainty: Sequence[float] | None = None, source: str | None = None
) -> dict[str, Any]:
    """The domain reference of a fit: packing statistics over the training ``frames`` and, from
    ``frame_uncertainty`` (the largest per-atom uncertainty, eV/Angstrom, of each calibration frame;
    None: the kind has none), the uncertainty limit; ``source`` says which frames those were."""
    count, total, total_sq = _sums(_packing_values(frames, elements))
    metadata: dict[str, Any] = {
        "radius": RADIUS,
        "z": float(norm.ppf(1 - FALSE_POSITIVE_RATE / 2)),
        "false_positive_rate": FALSE_POSITIVE_RATE,
        "training_frames": len(frames),
        "packing_frames": count.tolist(),
    }
    values = np.asarray([] if frame_uncertainty is None else frame_uncertainty, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size:
        metadata.update(
            uncertainty_limit=uncertainty_limit(values),
            uncertainty_largest=float(values.max()),
            calibration_frames=int(values.size),
            calibration_source=source,
        )
    return {"packing": _packing_table(count, total, total_sq), "metadata": metadata}


def extended(domain: dict[str, Any] | None, frames: Sequence[Atoms], elements: Sequence[str]) -> dict[str, Any] | None:
    """``domain`` with its packing statistics over ``frames`` too (``partial_fit``); the
    uncertainty limit stays that of the fit."""
    if domain is None:
        return None
    old = np.asarray(domain["packing"], dtype=float)
    n_old = np.asarray(domain["metadata"]["packing_frames"], dtype=float)
    mean, sd = np.nan_to_num(old[:, 0]), np.nan_to_num(old[:, 1])
    count, total, total_sq = _sums(_packing_values(frames, elements))
    count, total, total_sq = count + n_old, total + n_old * mean, total_sq + n_old * (sd**2 + mean**2)
    metadata = {**domain["metadata"], "packing_frames": count.tolist()}
    metadata["training_frames"] += len(frames)
    return {"packing": _packing_table(count, total, total_sq), "metadata": metadata}


def file_entries(domain: dict[str, Any] | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays and metadata entries that store ``domain`` in a model file (none for None)."""
    if domain is None:
        return {}, {}
    return {PACKING_FIELD: np.asarray(domain["packing"], dtype=float)}, {"domain": domain["metadata"]}


def from_file(mf: modelfile.ModelFile) -> dict[str, Any] | None:
    """The domain reference of a loaded model file, None for files written without one."""
    if PACKING_FIELD not in mf.arrays:
        return None
    return {"packing": np.asarray(mf.arrays[PACKING_FIELD], dtype=float), "metadata": dict(mf.metadata.get("domain", {}))}
