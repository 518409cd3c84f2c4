"""The ``dart`` model kind: topological atomic descriptors and the DART network (dart paper).

Each atom is described by its TAD, how many atoms lie in its J, K and L shells (paper section
2.2; here counted per neighbour species with smooth shell boundaries, plus the atom's species
one-hot), and its energy is MLP_int(MLP_f(x_i) + sum over shells s and atoms j in them of
MLP_s(x_j)) (paper eqs. 1-6); a cluster's energy is the sum. Trained on energies alone with the
paper's recipe (L1 loss on the energies, Adam, learning rate x0.1 on a plateau of 25 epochs, CELU,
Kaiming initialisation, batches of 32), by default with the paper's layer sizes (Table 1).
Prediction is the model file's ``clusterforce._kernels.Predictor`` around the compiled DART network
(``cpp/include/clusterforce/dart.hpp``, ``models.hpp``);
forces are its exact gradient, but the model is fitted to energies only: use it to rank and
screen structures (``clusterforce screen``), not to run dynamics.

Model file (kind ``"dart"``): metadata ``elements``, ``atomic_numbers``, ``shells`` (``r_J``,
``r_K``, ``width``, Angstrom), ``layers`` (number of layers of each network), ``e_scale`` (eV),
``hyperparameters``, ``training``; arrays ``e0`` (S,), ``tad_mean``/``tad_scale`` (4S,),
``nets/<name>/W<l>`` (n_out, n_in) and ``nets/<name>/b<l>`` for the networks f, J, K, L, int.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse
from ase import Atoms
from tqdm.auto import tqdm

from clusterforce import _kernels
from clusterforce.core import modelfile
from clusterforce.data import frame_label, validate_frames
from clusterforce.kinds.adam import Adam
from clusterforce.kinds.dart.network import Mlp
from clusterforce.kinds.network import NetworkModelFile

logger = logging.getLogger(__name__)

KIND = "dart"
NETS = ("f", "J", "K", "L", "int")
KCAL_PER_MOL_PER_EV = 23.060548


def shells_from_rdf(frames: Sequence[Atoms], *, bin_width: float = 0.05, rule: str = "half-maximum") -> tuple[float, float]:
    """Shell boundaries r_J, r_K (Angstrom) from the pair-distance distribution of the frames,
    g(r) ~ count(r) / r^2 smoothed over 0.15 Angstrom.

    ``rule="minimum"`` is the paper's choice (from Ga-Ga distances of optimised isomers): r_J at
    the first minimum of g after its first peak. The default ``"half-maximum"`` puts r_J where the
    first peak falls to half its height on its outer side: in thermal (MD) frames the first minimum
    is a broad, flat trough (Au10-Au15 DFT frames: 3.4-4.0 A, minimum at 3.8 A), and a boundary
    there counts stretched bonds as bonds, so the J count no longer sees what orders the frames of
    one size by energy. On the flank (Au: 3.0 A, ~1.1 x the nearest-neighbour distance) the total J
    count alone ranks held-out Au16-Au19 frames with |Spearman rho| 0.92-0.94 (0.57-0.81 at 3.8 A),
    and trained dart with 0.95-0.96 (0.77-0.82); ``benchmarks/bench_neural.py``, docs/benchmarks.md.

    r_K is, for either rule, the first minimum beyond 1.3 x the first minimum (r_K = 1.8 x that
    minimum, the paper's ratio, when it is not resolved).
    """
    if rule not in ("half-maximum", "minimum"):
        raise ValueError(f"shells_from_rdf: rule must be 'half-maximum' or 'minimum', got {rule!r}")
    distances = []
    for atoms in frames:
        d = atoms.get_all_distances()
        distances.append(d[np.triu_indices(len(atoms), 1)])
    r = np.concatenate(distances)
    edges = np.arange(0.0, r.max() + 2 * bin_width, bin_width)
    counts, _ = np.histogram(r, bins=edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    kernel = np.exp(-0.5 * (np.arange(-6, 7) * bin_width / 0.15) ** 2)
    g = np.convolve(counts / np.maximum(centres, bin_width) ** 2, kernel / kernel.sum(), mode="same")
    peak = int(np.argmax(g))
    minima = [i for i in range(peak + 1, len(g) - 1) if g[i] < g[i - 1] and g[i] <= g[i + 1] and g[i] < 0.8 * g[peak]]
    if not minima:
        raise ValueError("dart: the pair-distance distribution has no minimum after its first peak; give r_J and r_K")
    r_min = float(centres[minima[0]])
    later = [i for i in minima[1:] if centres[i] > 1.3 * r_min]
    r_k = float(centres[later[0]]) if later else 1.8 * r_min
    if rule == "minimum":
        return r_min, r_k
    # First bin past the peak below half its height, interpolated linearly with the bin before.
    i = next(i for i in range(peak + 1, minima[0] + 1) if g[i] < 0.5 * g[peak])
    half = 0.5 * g[peak]
    r_j = float(centres[i - 1] + (centres[i] - centres[i - 1]) * (g[i - 1] - half) / (g[i - 1] - g[i]))
    return r_j, r_k


class DARTModel(NetworkModelFile):
    """DART energy model on topological atomic descriptors (energies only; eV).

    Parameters
    ----------
    r_J, r_K : float, optional
        Shell boundaries (Angstrom). Default from the training data's radial distribution
        (:func:`shells_from_rdf`, logged): r_J where its first peak falls to half height, r_K
        at its second minimum.
    width : float
        Width of the logistic shell boundaries (Angstrom); -> 0 gives the paper's integer counts.
    feature_width : int
        Output width of the atom networks MLP_f, MLP_J, MLP_K, MLP_L (paper: 128).
    atom_hidden : sequence of int
        Hidden layers of the atom networks (paper: one of 128).
    interaction_hidden : sequence of int
        Hidden layers of MLP_int, which maps the features to the atom's energy (paper: 256, 128, 32).
    learning_rate, batch_size, max_epochs : float, int, int
        Adam's initial step, frames per batch, epochs at most.
    patience : int
        Epochs without a better validation MAE before the learning rate is divided by 10; training
        stops when it falls below ``min_learning_rate``.
    min_learning_rate : float
        See ``patience``.
    weight_decay : float
        Decoupled (AdamW-style) L2 decay of the weight matrices, not the biases: after each Adam
        step every W is multiplied by ``1 - lr * weight_decay`` (lr the current, scheduled
        learning rate; dimensionless, per step). 0 (default) is the paper's plain Adam: trained on
        Au10-Au15 and tested on Au16-Au19 (``benchmarks/bench_neural.py``), 0.1 ranked no better and
        raised the energy bias (145 against 92 meV/atom).
    validation_fraction : float
        Share of the frames held out to drive the schedule and pick the best epoch.
    validation : {"random", "largest"}
        Which frames are held out: ``"random"`` frames (the paper's split), or ``"largest"``, whole
        cluster sizes from the largest down until ``validation_fraction`` of the frames is reached,
        so the best epoch is the one that extrapolates best to larger clusters (falls back to
        random when the data has a single size). On Au10-Au15 -> Au16-Au19, ``"largest"`` (Au15
        held out) cut the energy bias from 92 to 80 meV/atom but ranked slightly worse (Spearman
        rho 0.92-0.94 against 0.95-0.96), hence not the default.
    e0 : mapping of symbol to eV, or str, optional
        Isolated-atom energies the network's energies are counted from: a mapping (eV per element),
        ``"reference"``/``"reference:NAME"`` (isolated atoms with that reference) or ``"fit"``/None
        (default: least squares on the training compositions); :mod:`clusterforce.kinds.composition`.
    random_state : int
        Seed of the initialisation, the split and the batches.
    progress : bool
        Show a tqdm bar over epochs.
    """

    kind = KIND
    implemented_properties = ("energy", "free_energy", "energies", "forces")
    _COMPILED = _kernels.DartModel
    _FITTED = "nets_"

    def __init__(
        self,
        *,
        r_J: float | None = None,
        r_K: float | None = None,
        width: float = 0.1,
        feature_width: int = 128,
        atom_hidden: Sequence[int] = (128,),
        interaction_hidden: Sequence[int] = (256, 128, 32),
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        max_epochs: int = 300,
        patience: int = 25,
        min_learning_rate: float = 1e-6,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.1,
        validation: str = "random",
        e0: Mapping[str, float] | str | None = None,
        random_state: int = 0,
        progress: bool = True,
    ) -> None:
        self.r_J = r_J
        self.r_K = r_K
        self.width = width
        self.feature_width = feature_width
        self.atom_hidden = atom_hidden
        self.interaction_hidden = interaction_hidden
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.min_learning_rate = min_learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.validation = validation
        self.e0 = e0
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ training
    def fit(self, frames: Sequence[Atoms]) -> DARTModel:
        """Train on the reference energies (eV) of free clusters."""
        start = time.perf_counter()
        frames = list(frames)
        validate_frames(frames, need_energy=True, need_forces=False, hint="dart trains on energies")
        for i, a in enumerate(frames):
            if a.pbc.any():
                raise ValueError(f"{frame_label(a, i)}: dart models free clusters; this frame is periodic")
        if len(frames) < 2:
            raise ValueError("dart needs at least 2 frames with energies")
        self._check_training_parameters()
        species = self._index_species(frames)
        if self.r_J is None or self.r_K is None:
            r_j, r_k = shells_from_rdf(frames)
            self.shells_ = (self.r_J or r_j, self.r_K or r_k)
            logger.info("dart shells from the radial distribution: r_J %.2f A, r_K %.2f A", *self.shells_)
        else:
            self.shells_ = (float(self.r_J), float(self.r_K))
        n_species = len(self.element_list_)
        x = [_kernels.tad(a.positions, s, n_species, *self.shells_, self.width) for a, s in zip(frames, species)]
        stacked = np.concatenate(x)
        self.tad_mean_ = stacked.mean(axis=0)
        std = stacked.std(axis=0)
        self.tad_scale_ = np.where(std > 1e-8, std, 1.0)
        residual = self._fit_isolated_energies(frames, species)
        data = [self._frame_data(a, s, xi) for a, s, xi in zip(frames, species, x)]
        self._train(data, residual)
        self._finish_fit(frames, start)
        self._fit_domain(frames)  # no uncertainty: the score has only its geometric parts
        return self

    def _check_training_parameters(self) -> None:
        if not (np.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"dart: weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if self.validation not in ("random", "largest"):
            raise ValueError(f"dart: validation must be 'random' or 'largest', got {self.validation!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"dart: validation_fraction must be in [0, 1), got {self.validation_fraction!r}")

    def _split(self, sizes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Validation and training frame indices (see ``validation``)."""
        n = len(sizes)
        order = rng.permutation(n)
        n_valid = int(round(self.validation_fraction * n)) if n >= 10 else 0
        distinct = np.unique(sizes)[::-1]
        if self.validation == "largest" and n_valid and len(distinct) > 1:
            # Whole sizes, largest first, until the share is reached; at least one size stays in training.
            held: list[int] = []
            for size in distinct[:-1]:
                held.append(int(size))
                if np.isin(sizes, held).sum() >= n_valid:
                    break
            mask = np.isin(sizes[order], held)
            return order[mask], order[~mask]
        if self.validation == "largest" and n_valid:
            logger.info("dart: the data has one cluster size; validating on random frames")
        return order[:n_valid], order[n_valid:]

    def _frame_data(self, atoms: Atoms, species: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        d = atoms.get_all_distances()
        a, _ = _kernels.shell_membership(d.ravel(), *self.shells_, self.width)
        a = a.reshape(len(atoms), len(atoms), 3)
        a[np.arange(len(atoms)), np.arange(len(atoms))] = 0.0
        return (x - self.tad_mean_) / self.tad_scale_, [a[:, :, s] for s in range(3)]

    def _networks(self, n_in: int, rng: np.random.Generator) -> dict[str, Mlp]:
        atom = [n_in, *self.atom_hidden, self.feature_width]
        nets = {name: Mlp(atom, rng) for name in NETS[:4]}
        nets["int"] = Mlp([self.feature_width, *self.interaction_hidden, 1], rng)
        return nets

    def _forward(self, nets: dict[str, Mlp], z: np.ndarray, shells: list[scipy.sparse.csr_matrix]):
        hf, cf = nets["f"].forward(z)
        y, caches = hf, {"f": cf}
        for s, name in enumerate(NETS[1:4]):
            h, caches[name] = nets[name].forward(z)
            y = y + shells[s] @ h
        out, caches["int"] = nets["int"].forward(y)
        return out[:, 0] * self.e_scale_, caches

    def _batch(self, data, idx):
        z = np.concatenate([data[i][0] for i in idx])
        shells = [scipy.sparse.block_diag([data[i][1][s] for i in idx], format="csr") for s in range(3)]
        owner = np.repeat(np.arange(len(idx)), [len(data[i][0]) for i in idx])
        return z, shells, owner

    def _frame_energies(self, nets, batch, n_frames: int) -> tuple[np.ndarray, dict]:
        z, shells, owner = batch
        atom_e, caches = self._forward(nets, z, shells)
        return np.bincount(owner, weights=atom_e, minlength=n_frames), caches

    def _train(self, data, target: np.ndarray) -> None:
        rng = np.random.default_rng(self.random_state)
        valid, train = self._split(np.array([len(d[0]) for d in data]), rng)
        n_valid = len(valid)
        nets = self._networks(data[0][0].shape[1], rng)
        params = [p for name in NETS for p in nets[name].params]
        opt = Adam(params, self.learning_rate)
        valid_batch = self._batch(data, valid) if n_valid else None
        best, best_params, stale, history = np.inf, [p.copy() for p in params], 0, []
        epochs = tqdm(range(self.max_epochs), desc="dart epochs", disable=not self.progress, leave=False)
        for _ in epochs:
            rng.shuffle(train)
            train_mae = 0.0
            for lo in range(0, len(train), self.batch_size):
                idx = train[lo : lo + self.batch_size]
                batch = self._batch(data, idx)
                pred, caches = self._frame_energies(nets, batch, len(idx))
                diff = pred - target[idx]
                train_mae += np.abs(diff).sum()
                # L1 loss, mean over the batch's frames; each atom's energy enters its frame's sum.
                g_out = (np.sign(diff) / len(idx))[batch[2]][:, None] * self.e_scale_
                grads_int, g_y = nets["int"].backward(caches["int"], g_out)
                grads = {"int": grads_int, "f": nets["f"].backward(caches["f"], g_y)[0]}
                for s, name in enumerate(NETS[1:4]):
                    grads[name] = nets[name].backward(caches[name], batch[1][s].T @ g_y)[0]
                opt.step([g for name in NETS for g in grads[name]])
                if self.weight_decay:
                    # Decoupled from the adaptive step (AdamW): shrinks weights the loss does not need.
                    for name in NETS:
                        for w in nets[name].W:
                            w *= 1.0 - opt.lr * self.weight_decay
            train_mae /= len(train)
            if valid_batch is not None:
                score = float(np.mean(np.abs(self._frame_energies(nets, valid_batch, n_valid)[0] - target[valid])))
            else:
                score = train_mae
            history.append((train_mae, score))
            epochs.set_postfix(train_mae_eV=f"{train_mae:.4f}", valid_mae_eV=f"{score:.4f}", lr=f"{opt.lr:.0e}")
            if score < best:
                best, best_params, stale = score, [p.copy() for p in params], 0
            else:
                stale += 1
            if stale >= self.patience:
                opt.lr *= 0.1
                stale = 0
                if opt.lr < self.min_learning_rate:
                    break
        for p, q in zip(params, best_params):
            p[...] = q
        self.nets_ = {name: {"W": [w.copy() for w in nets[name].W], "b": [b.copy() for b in nets[name].b]} for name in NETS}
        self.training_ = {
            "epochs": len(history),
            "n_train": len(train),
            "n_valid": int(n_valid),
            "train_mae_eV": float(history[-1][0]),
            "best_valid_mae_eV": float(best) if n_valid else None,
        }
        logger.info("dart fit: %d epochs, best validation MAE %.4f eV per frame (%d frames)", len(history), best, n_valid)

    # -------------------------------------------------------------- model file
    def _arrays_metadata(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"tad_mean": self.tad_mean_, "tad_scale": self.tad_scale_}
        for name in NETS:
            for layer, (w, b) in enumerate(zip(self.nets_[name]["W"], self.nets_[name]["b"])):
                arrays[f"nets/{name}/W{layer}"] = w
                arrays[f"nets/{name}/b{layer}"] = b
        metadata = {
            "shells": {"r_J": self.shells_[0], "r_K": self.shells_[1], "width": self.width},
            "layers": {name: len(self.nets_[name]["W"]) for name in NETS},
            "hyperparameters": {
                **self.get_params(),
                "atom_hidden": list(self.atom_hidden),
                "interaction_hidden": list(self.interaction_hidden),
            },
        }
        return arrays, metadata

    def _restore(self, mf: modelfile.ModelFile) -> None:
        meta = mf.metadata
        self.shells_ = (float(meta["shells"]["r_J"]), float(meta["shells"]["r_K"]))
        n = len(self.element_list_)
        self.tad_mean_ = mf.array("tad_mean", shape=(4 * n,))
        self.tad_scale_ = mf.array("tad_scale", shape=(4 * n,))
        self.nets_ = {
            name: {
                "W": [mf.array(f"nets/{name}/W{layer}") for layer in range(int(meta["layers"][name]))],
                "b": [mf.array(f"nets/{name}/b{layer}") for layer in range(int(meta["layers"][name]))],
            }
            for name in NETS
        }
