"""The ``sann`` model kind: one network for all species, energy and forces fitted concurrently but
decoupled (sann paper).

Descriptors (paper eqs. 1-6, 10-11; ``cpp/include/clusterforce/sann.hpp``): per atom the power
spectrum P_nl (exponents n, l = 0..l_max) and radial functions (exponents xi) of its neighbours
within r_cut, bond-weighted by MEAD weights exp(mu_hk / m_h) for the energy and by 1 for the
"dummy energy" whose gradient, weighted by the centre element's share w_beta of the
Clementi-Raimondi effective nuclear charges, gives the forces (eq. 12). The paper's values are the
defaults: r_cut 8 Angstrom, five n, l up to 9, nine xi (59 inputs), two sigmoid layers of 30.

Training: the global extended Kalman filter on each structure's error vector (its energy and, per
update, ``force_rows`` random force components; paper eq. 9), or Adam on the same squared errors,
for comparison. The descriptors are standardised (energy and force sets separately: with one
species the two then coincide and the forces are the energy's gradient). Prediction is the
model file's ``clusterforce._kernels.Predictor`` (the network ``_kernels.SannModel`` plus the
structure driver's wall and checks), which the LAMMPS pair style runs too.

Model file (kind ``"sann"``): metadata ``elements``, ``atomic_numbers``, ``descriptor`` (``r_cut``,
``exponents``, ``l_max``, ``xi``), ``layers``, ``e_scale``, ``hyperparameters``, ``training``; arrays
``masses``, ``w_beta``, ``e0`` (S,), ``mean_e``, ``scale_e``, ``mean_f``, ``scale_f`` (D,),
``net/W<l>`` (n_out, n_in) and ``net/b<l>``; ``uncertainty/last_layer_covariance`` (H + 1, H + 1)
when trained with uncertainties (files without it load and predict, without uncertainty); the
repulsive baseline's ``baseline/r_s`` (S, S) and metadata ``baseline`` when trained with it (the
default; :mod:`clusterforce.core.baseline`, as the gap and dml kinds store it).

Uncertainty (Bayesian last layer): energies and forces are linear in the output layer's weights
theta_L = (w_L, b_L), so a Gaussian posterior on theta_L gives exact force variances
diag(J_F Sigma_L J_F^T). Sigma_L is the Laplace approximation after training,
(sum_rows j j^T / sigma_row^2 + I / lambda)^-1 over the training frames' energy and force rows,
with sigma the model's own training RMSEs and lambda = mean(theta_L^2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses
from tqdm.auto import tqdm

from clusterforce import _kernels
from clusterforce.core import baseline as pair_wall
from clusterforce.core import modelfile
from clusterforce.data import get_forces, validate_frames
from clusterforce.kinds.adam import Adam
from clusterforce.kinds.network import NetworkModelFile
from clusterforce.kinds.sann.kalman import GlobalEKF
from clusterforce.kinds.sann.network import SannNetwork

logger = logging.getLogger(__name__)

KIND = "sann"

#: Effective nuclear charge of the outermost valence orbital, for the elements of the paper's systems
#: (Ag-Au alloys, Au-thiolates) and the project's data sets: Clementi and Raimondi, J. Chem. Phys. 38,
#: 2686 (1963) up to Kr (Cu 4s, Ga 4p), Clementi, Raimondi and Reinhardt, J. Chem. Phys. 47, 1300 (1967)
#: beyond (Ag 5s, Au 6s). Others: pass ``z_eff``.
CLEMENTI_RAIMONDI = {
    "H": 1.0,
    "C": 3.136,
    "N": 3.834,
    "O": 4.453,
    "Na": 2.507,
    "S": 5.482,
    "Cl": 6.116,
    "Cu": 5.842,
    "Ga": 6.222,
    "Ag": 8.030,
    "Au": 10.940,
}

PAPER_EXPONENTS = (0.0028, 0.0040, 0.0110, 0.0280, 0.059)
PAPER_XI = (0.005, 0.015, 0.0230, 0.038, 0.060, 0.090, 0.150, 0.260, 0.480)


class SANNModel(NetworkModelFile):
    """Single neural network for every species (energies in eV, forces in eV/Angstrom).

    Parameters
    ----------
    r_cut : float
        Descriptor cutoff (Angstrom; paper: 8).
    exponents, xi : sequence of float
        Power-spectrum and radial exponents (1/Angstrom^2; paper section IV A).
    l_max : int
        Highest l of the power spectrum (paper: 9).
    hidden : (int, int)
        Neurons of the two sigmoid layers (paper: 30, 30).
    optimizer : {"kalman", "adam"}
        Global extended Kalman filter (the paper's) or Adam.
    epochs : int
        Passes over the training frames.
    force_rows : int
        Force components per Kalman update (with the energy); Adam uses all.
    sigma_energy, sigma_force : float
        Error scales (eV/atom, eV/Angstrom) that weight energy against forces.
    learning_rate, batch_size : float, int
        Adam's step and frames per step.
    z_eff : mapping of symbol to float, optional
        Effective nuclear charges for w_beta; default :data:`CLEMENTI_RAIMONDI`. Not needed for
        one species (w_beta = 1).
    validation_fraction : float
        Frames held out to pick the best epoch.
    baseline : bool
        Add a repulsive pair wall below the shortest training distance of each element pair
        (:mod:`clusterforce.core.baseline`; default on). The network fits the reference minus the wall,
        which is the reference itself: the wall is zero on every training frame.
    e0 : mapping of symbol to eV, or str, optional
        Isolated-atom energies the network's energies are counted from: a mapping (eV per element),
        ``"reference"``/``"reference:NAME"`` (isolated atoms with that reference) or ``"fit"``/None
        (default: least squares on the training compositions); :mod:`clusterforce.kinds.composition`.
    random_state : int
    progress : bool
    """

    kind = KIND
    implemented_properties = ("energy", "free_energy", "energies", "forces")
    _COMPILED = _kernels.SannModel
    _FITTED = "net_"

    def __init__(
        self,
        *,
        r_cut: float = 8.0,
        exponents: Sequence[float] = PAPER_EXPONENTS,
        l_max: int = 9,
        xi: Sequence[float] = PAPER_XI,
        hidden: Sequence[int] = (30, 30),
        optimizer: str = "kalman",
        epochs: int = 5,
        force_rows: int = 12,
        sigma_energy: float = 0.005,
        sigma_force: float = 0.1,
        learning_rate: float = 1e-3,
        batch_size: int = 8,
        z_eff: Mapping[str, float] | None = None,
        validation_fraction: float = 0.1,
        baseline: bool = True,
        e0: Mapping[str, float] | str | None = None,
        random_state: int = 0,
        progress: bool = True,
    ) -> None:
        self.r_cut = r_cut
        self.exponents = exponents
        self.l_max = l_max
        self.xi = xi
        self.hidden = hidden
        self.optimizer = optimizer
        self.epochs = epochs
        self.force_rows = force_rows
        self.sigma_energy = sigma_energy
        self.sigma_force = sigma_force
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.z_eff = z_eff
        self.validation_fraction = validation_fraction
        self.baseline = baseline
        self.e0 = e0
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ training
    def _descriptors(self, atoms: Atoms, species: np.ndarray) -> dict[str, np.ndarray]:
        positions, species, cell, pbc = self._geometry_args(atoms, species)
        args = (self.masses_, self.r_cut, list(self.exponents), self.l_max, list(self.xi))
        return _kernels.sann_descriptors(positions, species, *args, cell, pbc)

    def _w_beta(self) -> np.ndarray:
        if len(self.element_list_) == 1:
            return np.ones(1)
        table = {**CLEMENTI_RAIMONDI, **(self.z_eff or {})}
        missing = [s for s in self.element_list_ if s not in table]
        if missing:
            raise ValueError(
                f"sann: no effective nuclear charge for {', '.join(missing)}; give z_eff (CLI: --z-eff {missing[0]}=VALUE, "
                "e.g. from Clementi, Raimondi and Reinhardt, J. Chem. Phys. 47, 1300 (1967))"
            )
        z = np.array([table[s] for s in self.element_list_], dtype=float)
        return z / z.sum()

    def fit(self, frames: Sequence[Atoms]) -> SANNModel:
        """Train on reference energies (eV) and forces (eV/Angstrom)."""
        start = time.perf_counter()
        frames = list(frames)
        validate_frames(frames, need_energy=True, need_forces=True, hint="sann fits energies and forces together")
        if self.optimizer not in ("kalman", "adam"):
            raise ValueError(f"sann: optimizer must be 'kalman' or 'adam', got {self.optimizer!r}")
        species = self._index_species(frames)
        self.baseline_r_s_ = pair_wall.fit_pair_wall(frames, self.element_list_) if self.baseline else None
        self.last_layer_covariance_ = None  # a refit's network differs: the old posterior does not apply
        self.masses_ = np.array([atomic_masses[z] for z in self.atomic_numbers_])
        self.w_beta_ = self._w_beta()
        raw = [
            self._descriptors(a, s)
            for a, s in tqdm(list(zip(frames, species)), desc="sann descriptors", disable=not self.progress, leave=False)
        ]
        qe, qf = np.concatenate([d["energy"] for d in raw]), np.concatenate([d["force"] for d in raw])
        self.mean_e_, self.scale_e_ = qe.mean(axis=0), np.maximum(qe.std(axis=0), 1e-8)
        self.mean_f_, self.scale_f_ = qf.mean(axis=0), np.maximum(qf.std(axis=0), 1e-8)
        residual = self._fit_isolated_energies(frames, species, spread=5.0)
        data = []
        for a, s, d, e in zip(frames, species, raw, residual):
            n = len(a)
            v = -(self.w_beta_[s][:, None, None] * d["force_gradient"].reshape(n, -1, 3 * n)) / self.scale_f_[None, :, None]
            data.append(
                {
                    "ze": (d["energy"] - self.mean_e_) / self.scale_e_,
                    "zf": (d["force"] - self.mean_f_) / self.scale_f_,
                    "v": v,
                    "energy": e,
                    "forces": get_forces(a).ravel(),
                    "n": n,
                }
            )
        valid = self._train(data)
        self._finish_fit(frames, start)
        self._fit_last_layer_covariance(frames, species, valid)
        # Early stopping held the validation frames out of the weights: the uncertainty limit of
        # the out-of-domain score is their largest per-atom uncertainty (training frames without them).
        calibration, source = (valid, "validation frames") if len(valid) else (np.arange(len(frames)), "training frames")
        self._fit_domain(frames, self._frame_uncertainties([frames[i] for i in calibration]), source)
        return self

    def _geometry_args(self, atoms: Atoms, species: np.ndarray) -> tuple:
        cell = (np.array(atoms.cell[:], dtype=float), tuple(bool(p) for p in atoms.pbc)) if atoms.pbc.any() else (None, None)
        return (atoms.positions, species, *cell)

    def _fit_last_layer_covariance(self, frames: Sequence[Atoms], species: Sequence[np.ndarray], valid: np.ndarray) -> None:
        """Sigma_L = (sum_rows j j^T / sigma_row^2 + I / lambda)^-1 (Laplace approximation on theta_L),
        scaled to the force errors of the ``valid`` frames (indices into ``frames``).

        The EKF already treats the weights as Gaussian; the output layer is where energies and forces
        are linear in them, so this posterior gives exact, cheap force variances. sigma_E (eV per frame)
        and sigma_F (eV/Angstrom per component) are the model's own training RMSEs; lambda, the prior
        variance of the output weights, is mean(theta_L^2).
        """
        compiled = self._network()
        m = int(self.hidden[-1]) + 1
        gram_e, gram_f, gram_valid = np.zeros((m, m)), np.zeros((m, m)), np.zeros((m, m))
        energy_sq, force_sq, valid_sq, n_components = 0.0, 0.0, 0.0, 0
        in_valid = np.isin(np.arange(len(frames)), valid)
        for atoms, s, held_out in zip(frames, species, in_valid):
            args = self._geometry_args(atoms, s)
            out = compiled.compute(*args)
            energy_row, force_rows = compiled.last_layer_rows(*args)
            gram_e += np.outer(energy_row, energy_row)
            gram_f += force_rows.T @ force_rows
            energy_sq += (out["energy"] - atoms.get_potential_energy()) ** 2
            frame_sq = float(np.sum((out["forces"] - get_forces(atoms)) ** 2))
            force_sq += frame_sq
            n_components += 3 * len(atoms)
            if held_out:
                gram_valid += force_rows.T @ force_rows
                valid_sq += frame_sq
        # Floors keep a (near-)perfect fit of a tiny data set from giving an infinite precision.
        sigma_e = max(np.sqrt(energy_sq / len(frames)), 1e-6)
        sigma_f = max(np.sqrt(force_sq / n_components), 1e-6)
        weights, biases = self.net_.layers()
        theta_l = np.concatenate([weights[-1].ravel(), biases[-1].ravel()])
        prior = max(float(np.mean(theta_l**2)), 1e-12)
        covariance = np.linalg.inv(np.eye(m) / prior + gram_e / sigma_e**2 + gram_f / sigma_f**2)
        covariance = 0.5 * (covariance + covariance.T)
        # The last layer's posterior leaves out every other layer's error: measured at 0.02-0.04 of
        # the actual force error. Its scale is fitted on the frames early stopping held out, whose
        # summed force variance is sum_rows j^T Sigma_L j = trace(Sigma_L sum_rows j j^T).
        valid_var = float(np.sum(covariance * gram_valid))
        scale = float(np.sqrt(valid_sq / valid_var)) if valid_var > 0 else 1.0
        self.last_layer_covariance_ = covariance * scale**2
        self._build_predictor()
        self.training_["uncertainty"] = {
            "method": "Laplace approximation on the output layer (w_L, b_L), scaled to the validation frames' force errors",
            "sigma_energy_eV_per_frame": float(sigma_e),
            "sigma_force_eV_per_A": float(sigma_f),
            "prior_variance": prior,
            "validation_scale": scale,
            "validation_frames": len(valid),
        }

    def _predict_scaled(self, net: SannNetwork, d: dict) -> tuple[float, np.ndarray]:
        """Energy residual (eV) and forces (3n,) of one frame from the numpy network."""
        energy = self.e_scale_ * float(net.energy(d["ze"]).sum())
        forces = self.e_scale_ * np.einsum("nk,nkc->c", net.input_gradient(d["zf"]), d["v"])
        return energy, forces

    def _rows(self, net: SannNetwork, d: dict, components: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Jacobian (1 + m, p) and error (1 + m,) of a frame's scaled energy and chosen forces."""
        n = d["n"]
        energy, forces = self._predict_scaled(net, d)
        scale_e = self.e_scale_ / (n * self.sigma_energy)
        rows = [scale_e * net.energy_rows(d["ze"]).sum(axis=0)[None, :]]
        errors = [(d["energy"] - energy) / (n * self.sigma_energy)]
        if len(components):
            z = np.repeat(d["zf"][None], len(components), axis=0).reshape(-1, d["zf"].shape[1])
            v = d["v"][:, :, components].transpose(2, 0, 1).reshape(-1, d["zf"].shape[1])
            force_rows = net.directional_rows(z, v).reshape(len(components), n, -1).sum(axis=1)
            rows.append(self.e_scale_ / self.sigma_force * force_rows)
            errors.extend((d["forces"][components] - forces[components]) / self.sigma_force)
        return np.vstack(rows), np.array(errors)

    def _gradient(self, net: SannNetwork, d: dict) -> tuple[np.ndarray, float]:
        """Gradient of a frame's loss r_E^2 + mean_c r_c^2 and the loss (scaled residuals)."""
        n = d["n"]
        energy, forces = self._predict_scaled(net, d)
        r_e = (energy - d["energy"]) / (n * self.sigma_energy)
        r_f = (forces - d["forces"]) / self.sigma_force
        grad = 2 * r_e * self.e_scale_ / (n * self.sigma_energy) * net.energy_rows(d["ze"]).sum(axis=0)
        # Force components enter linearly in v: contract the residuals into one direction per atom.
        v = np.einsum("nkc,c->nk", d["v"], r_f)
        grad += 2.0 / (3 * n) * self.e_scale_ / self.sigma_force * net.directional_rows(d["zf"], v).sum(axis=0)
        return grad, float(r_e**2 + np.mean(r_f**2))

    def _score(self, net: SannNetwork, data: list[dict]) -> float:
        """Validation loss: mean of (energy error per atom / sigma_E)^2 + mean (force error / sigma_F)^2."""
        total = 0.0
        for d in data:
            energy, forces = self._predict_scaled(net, d)
            total += ((energy - d["energy"]) / (d["n"] * self.sigma_energy)) ** 2 + np.mean(
                ((forces - d["forces"]) / self.sigma_force) ** 2
            )
        return total / max(len(data), 1)

    def _train(self, data: list[dict]) -> np.ndarray:
        """Fit the network on ``data``; returns the indices of the frames held out for early stopping."""
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(data))
        n_valid = int(round(self.validation_fraction * len(data))) if len(data) >= 10 else 0
        valid, train = [data[i] for i in order[:n_valid]], [data[i] for i in order[n_valid:]]
        net = SannNetwork(data[0]["ze"].shape[1], self.hidden, rng)
        ekf = GlobalEKF(net.theta) if self.optimizer == "kalman" else None
        adam = Adam([net.theta], self.learning_rate) if self.optimizer == "adam" else None
        best, best_theta, history = np.inf, net.theta.copy(), []
        update_seconds, updates = 0.0, 0
        for _ in tqdm(range(self.epochs), desc=f"sann epochs ({self.optimizer})", disable=not self.progress, leave=False):
            idx = rng.permutation(len(train))
            if ekf is not None:
                for i in idx:
                    d = train[i]
                    components = rng.choice(3 * d["n"], size=min(self.force_rows, 3 * d["n"]), replace=False)
                    jac, err = self._rows(net, d, components)
                    t0 = time.perf_counter()
                    ekf.update(jac, err)
                    update_seconds += time.perf_counter() - t0
                    updates += 1
            else:
                for lo in range(0, len(idx), self.batch_size):
                    batch = [train[i] for i in idx[lo : lo + self.batch_size]]
                    adam.step([sum(self._gradient(net, d)[0] for d in batch) / len(batch)])
            score = self._score(net, valid or train)
            history.append(score)
            if score < best:
                best, best_theta = score, net.theta.copy()
        net.theta[...] = best_theta
        self.net_ = net
        self.training_ = {
            "optimizer": self.optimizer,
            "epochs": len(history),
            "validation_loss": [float(h) for h in history],
            "n_train": len(train),
            "n_valid": n_valid,
            "n_weights": int(net.n_params),
        }
        if updates:
            self.training_["kalman_seconds_per_update"] = update_seconds / updates
        logger.info("sann fit (%s): %d epochs, best validation loss %.4g", self.optimizer, len(history), best)
        return np.sort(order[:n_valid])

    # ---------------------------------------------------------------- prediction
    # -------------------------------------------------------------- model file
    _STATE = ("masses", "w_beta", "mean_e", "scale_e", "mean_f", "scale_f")

    def _arrays_metadata(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        weights, biases = self.net_.layers()
        arrays = {name: getattr(self, f"{name}_") for name in self._STATE}
        for layer, (w, b) in enumerate(zip(weights, biases)):
            arrays[f"net/W{layer}"] = np.ascontiguousarray(w)
            arrays[f"net/b{layer}"] = np.ascontiguousarray(b)
        if getattr(self, "last_layer_covariance_", None) is not None:
            arrays["uncertainty/last_layer_covariance"] = np.ascontiguousarray(self.last_layer_covariance_)
        wall_metadata = {}
        if self.baseline_r_s_ is not None:
            wall_arrays, wall_metadata = pair_wall.file_entries(self.baseline_r_s_)
            arrays.update(wall_arrays)
        params = self.get_params()
        params.update(
            exponents=list(self.exponents), xi=list(self.xi), hidden=list(self.hidden), z_eff=dict(self.z_eff) if self.z_eff else None
        )
        metadata = {
            "descriptor": {"r_cut": self.r_cut, "exponents": list(self.exponents), "l_max": self.l_max, "xi": list(self.xi)},
            "layers": len(weights),
            "hyperparameters": params,
            **wall_metadata,
        }
        return arrays, metadata

    def _restore(self, mf: modelfile.ModelFile) -> None:
        for name in self._STATE:
            setattr(self, f"{name}_", mf.array(name))
        net = SannNetwork(len(self.mean_e_), self.hidden, np.random.default_rng(0))
        net.theta[...] = np.concatenate([mf.array(f"net/{k}{layer}").ravel() for layer in range(3) for k in ("W", "b")])
        self.net_ = net
        m = int(self.hidden[-1]) + 1
        name = "uncertainty/last_layer_covariance"
        self.last_layer_covariance_ = mf.array(name, shape=(m, m)) if name in mf.arrays else None
        # Files written before sann had the baseline carry none: they predict as they did.
        n_species = len(self.element_list_)
        self.baseline = "baseline/r_s" in mf.arrays
        self.baseline_r_s_ = mf.array("baseline/r_s", shape=(n_species, n_species)) if self.baseline else None
