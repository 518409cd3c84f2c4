"""The dml prediction composed from the estimator's pieces in Python: the independent reference
the compiled predictor (Python, ASE and LAMMPS) is checked against."""

import numpy as np
from ase import Atoms
from clusterforce.kinds.dml import DMLModel


def composed_prediction(model: DMLModel, atoms: Atoms) -> dict[str, np.ndarray]:
    """Reference for the compiled predictor, assembled from the estimator's pieces: the Python
    descriptor and environments, the scaler, EMLM distances in numpy and the OAMLM step."""
    from clusterforce.core import baseline
    from clusterforce.data import species_indices
    from clusterforce.kinds.dml.environments import extract_environments

    n = len(atoms)
    X = model.descriptor_.compute(atoms)
    norms, directions, uncertainty = np.zeros(n), np.zeros((n, 3)), np.zeros(n)
    classes = np.empty(n, dtype=object)
    for name, env in extract_environments(atoms, chemistry=model.chemistry_, smooth=model.smooth).items():
        idx, part = env.indices, model.models_[name]
        Xs = part.scaler.transform(X[idx])
        d = np.linalg.norm(Xs[:, None, :] - part.emlm.references_[None], axis=2)
        low, high = part.emlm.output_range_
        norms[idx] = np.clip(d @ part.emlm.coef_, max(low, 0.0), high) * env.presence()
        diagnostics = part.oamlm.predict_diagnostics(Xs, env)
        directions[idx], uncertainty[idx], classes[idx] = diagnostics["v"], diagnostics["spread"], name
    forces = norms[:, None] * directions
    if model.baseline_r_s_ is not None:
        forces += baseline.energy_forces(model.baseline_r_s_, atoms, species_indices(atoms, model.elements))[1]
    return {
        "forces": forces,
        "norms": norms,
        "spread": uncertainty,
        "uncertainty": norms * np.sqrt(2.0 * uncertainty),
        "classes": classes.astype(str),
    }
