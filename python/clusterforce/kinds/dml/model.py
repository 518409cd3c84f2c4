"""The ``dml`` model kind: per atom class, EMLM force norms and OAMLM force directions.

Forces are predicted directly (no energy): ``F = |F| * v̂`` with ``|F|`` from an EMLM on
min-max scaled SOAP vectors and ``v̂`` from an OAMLM on the same scaled vectors plus the
atom's aligned neighbourhood (oamlm paper, FIG. 2).

Model file (kind ``"dml"``), read by :meth:`DMLModel.load` and by the C++ reader:

- metadata: ``elements``, ``chemistry`` (``"thiolate"`` or ``"generic"``, which fixes the
  atom classes), ``classes``, ``descriptor`` (:meth:`SoapDescriptor.params`),
  ``hyperparameters`` (:meth:`DMLModel.get_params`), ``training`` (data hash, frame count,
  per-class counts and metrics), ``models`` (per class: ``emlm`` and ``oamlm`` parameters,
  ``n_references_norm``, ``n_references_direction``).
- arrays, per class ``C``: ``classes/C/scaler/*`` (MinMaxScaler state),
  ``classes/C/centres/*`` (the reference atoms as :class:`Neighbourhoods`: their neighbours
  within the SOAP cutoff, from which a reader recomputes their descriptors exactly),
  ``classes/C/emlm/*`` (EMLM state: ``reference_index`` (K,) rows of the centres, ``coef``
  (K,), ``output_range`` (2,), the training norm range predictions are clipped to) and
  ``classes/C/oamlm/*`` (OAMLM state with ``reference_index`` in place of ``X_ref``, including
  the reference environments). Files written before the centres existed store the descriptors
  themselves (``emlm/references``, ``oamlm/X_ref``) and still load.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from clusterforce.core import baseline as pair_wall
from clusterforce.core import domain, modelfile
from clusterforce.core.estimator import Estimator
from clusterforce.data import dataset_hash, get_forces, validate_frames
from clusterforce.descriptors.neighbors import shortest_pairs_of
from clusterforce.descriptors.selection import extend_maximin, rs_maximin
from clusterforce.kinds.dml.descriptor import Neighbourhoods, SoapDescriptor
from clusterforce.kinds.dml.emlm import EMLM
from clusterforce.kinds.dml.environments import Environments, detect_chemistry, extract_environments
from clusterforce.kinds.dml.oamlm import OAMLM
from clusterforce.kinds.dml.scaler import MinMaxScaler

logger = logging.getLogger(__name__)

KIND = "dml"
#: OAMLM alignment-weight width (Angstrom) of every class. The paper (III A) uses 0.25 for unit gold and
#: 0.5 for the others; on GFN1-xTB rings held out by size 0.5 for unit gold is as good or better
#: (ring6 26.0 vs 26.0 deg weighted angle, unseen open ring7/8 31.2 vs 37.4, puckered 33.3 vs 34.3).
DEFAULT_SIGMA2 = 0.5
#: Training forces below this norm (eV/Angstrom) have no usable direction.
ZERO_FORCE = 1e-6
#: Training frames whose largest uncertainty sets the out-of-domain score's limit (fit cost: as many predictions).
DOMAIN_FRAMES = 50
LOSSES = ("analytic", "numeric")
#: DMLModel parameters that are SOAP settings (stored once in the model file, as the descriptor's).
_SOAP_FIELDS = ("r_cut", "n_max", "l_max", "sigma")
FORCES_HINT = "the dml kind trains on forces (eV/Angstrom) only — add them, or use a kind that trains on energies"


@dataclass
class ClassModel:
    """The fitted pieces for one atom class; the EMLM and OAMLM references are the rows
    ``norm_index`` and ``direction_index`` of ``centres``."""

    scaler: MinMaxScaler
    emlm: EMLM
    oamlm: OAMLM
    centres: Neighbourhoods | None  # None: loaded from a file that stores the descriptors
    norm_index: np.ndarray | None
    direction_index: np.ndarray | None
    # |F| (eV/Angstrom) of the EMLM references, kept by fit for partial_fit (not in the model file).
    norm_targets: np.ndarray | None = None


#: Arrays stored as float32: the OAMLM matrices, most of a model's bytes. Rounding them to float32
#: changes predicted forces by about 1e-6 relative (measured on dataset:rings, 1000/500
#: references, ring6 held out: max |dF| 1.1e-6 eV/A). The fitted model rounds them too, so it
#: predicts exactly what its file does.
FLOAT32_ARRAYS = ("oamlm/B_c", "oamlm/B_g")
#: Descriptor arrays stored in the file as row indices into ``classes/C/centres`` instead.
_REFERENCE_DESCRIPTORS = ("emlm/references", "oamlm/X_ref")


def _round_to_stored_precision(model: ClassModel) -> None:
    """Round the arrays stored as float32 (values stay float64 in memory)."""
    model.oamlm.B_c_ = np.ascontiguousarray(model.oamlm.B_c_.astype(np.float32).astype(np.float64))
    model.oamlm.B_g_ = np.ascontiguousarray(model.oamlm.B_g_.astype(np.float32).astype(np.float64))


class DMLModel(Estimator):
    """Direct force model of kind ``dml`` (EMLM norms + OAMLM directions per atom class).

    Parameters
    ----------
    r_cut, n_max, l_max, sigma
        SOAP parameters (Angstrom for ``r_cut`` and ``sigma``); paper defaults.
    n_references_norm : int
        Training points (= references) per class for the EMLM, chosen by RS-maximin (paper 5000).
    n_references_direction : int
        Training points (= references) per class for the OAMLM. The paper uses 2500; 1000 is the
        default because the model file holds two K x K matrices per class (8 K^2 bytes): held
        out, dataset:rings n=4,5 -> 6 gives force RMSE 0.551 eV/A at 1000 and 0.552 at 2500,
        the Au10-15 -> Au16-19 DFT data 0.589 and 0.574 (weighted angle 36.4 vs 35.4 deg); 2500
        costs 2-7x the prediction time and 5x the file (docs/benchmarks.md, bench_dml_accuracy).
    sigma2 : mapping of class name to float, optional
        OAMLM alignment-weight width (Angstrom) per class; classes not listed use 0.5 (the paper,
        III A, gives unit gold 0.25; measured worse on unseen ring sizes, see ``DEFAULT_SIGMA2``).
    loss : {"analytic", "numeric"}
        OAMLM direction estimate: eq. 15-17 or eq. 14.
    smooth : bool
        Smooth cloud environments (``Au_core``, generic classes): the alignment blends its
        candidates with weights that vanish where the paper's rules switch (cloud radius, the
        12-atom cap, the nearest pair, the triangle prefilter, the best alignment), so forces are
        continuous in the positions (``environments.extract_environments``, ``align.hpp``).
        Files without the field predict with the paper's hard rules (``smooth=False``).
    random_state : int or None
        Seeds RS-maximin.
    progress : bool
        Show tqdm progress bars while fitting.
    """

    kind = KIND
    #: Force-only: no energy is defined (docs/architecture.md, model kinds).
    implemented_properties = ("forces",)
    #: predict() always gives ``uncertainty``, the expected force error |F| sqrt(2 spread) (eV/Angstrom):
    #: it costs nothing beyond the prediction.
    uncertainty_is_cheap = True
    _FITTED = "models_"
    #: Frames ``clusterforce learn`` collects before each partial_fit (each solves the B matrices again).
    partial_fit_every = 10

    def __init__(
        self,
        *,
        r_cut: float = 4.0,
        n_max: int = 7,
        l_max: int = 4,
        sigma: float = 0.25,
        n_references_norm: int = 5000,
        n_references_direction: int = 1000,
        sigma2: Mapping[str, float] | None = None,
        loss: str = "analytic",
        baseline: bool = True,
        smooth: bool = True,
        random_state: int | None = None,
        progress: bool = True,
    ) -> None:
        self.r_cut = r_cut
        self.n_max = n_max
        self.l_max = l_max
        self.sigma = sigma
        self.n_references_norm = n_references_norm
        self.n_references_direction = n_references_direction
        self.sigma2 = sigma2
        self.loss = loss
        self.baseline = baseline
        self.smooth = smooth
        self.random_state = random_state
        self.progress = progress

    # ------------------------------------------------------------------ training
    def fit(self, frames: Iterable[Atoms]) -> DMLModel:
        """Train on frames with reference forces (eV/Angstrom); energies are not used."""
        frames = list(frames)
        self._check_hyperparameters()
        self._compiled = None
        validate_frames(frames, need_energy=False, need_forces=True, hint=FORCES_HINT)
        self.descriptor_ = SoapDescriptor(r_cut=self.r_cut, n_max=self.n_max, l_max=self.l_max, sigma=self.sigma).fit(frames)
        # Classes follow from the chemistry of the whole training set, fixed here, so a
        # structure without S is still classified like the thiolate data it is compared with.
        self.chemistry_ = detect_chemistry(self.descriptor_.species_)
        X, F, envs, centres = self._collect(frames)
        rng = check_random_state(self.random_state)
        self.models_: dict[str, ClassModel] = {}
        stats: dict[str, dict[str, Any]] = {}
        for name in tqdm(sorted(X), desc="fitting classes", disable=not self.progress):
            self.models_[name], stats[name] = self._fit_class(name, X[name], F[name], envs[name], centres[name], rng)
            _round_to_stored_precision(self.models_[name])
        shortest = shortest_pairs_of(frames, self.r_cut)
        # Zero on every training frame (its r_s lie below the shortest training distances), so
        # the ML part above was fitted to the reference forces as they are.
        self.baseline_r_s_ = pair_wall.fit_pair_wall(frames, self.descriptor_.species_) if self.baseline else None
        self.r_min_ = pair_wall.training_r_min(frames, self.descriptor_.species_)
        self.training_ = {
            "data_hash": dataset_hash(frames),
            "n_frames": len(frames),
            "classes": stats,
            "shortest_pairs": shortest,
        }
        # dml keeps no frames out of its references: the uncertainty limit comes from (at most
        # DOMAIN_FRAMES of) the training frames, which it predicts somewhat better than new ones.
        calibration = frames[:: max(1, len(frames) // DOMAIN_FRAMES)][:DOMAIN_FRAMES]
        self._fit_domain(frames, self._frame_uncertainties(calibration), "training frames")
        return self

    def _check_hyperparameters(self) -> None:
        for key in ("n_references_norm", "n_references_direction"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"DMLModel: {key} must be a positive integer, got {value!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"DMLModel: loss must be one of {LOSSES}, got {self.loss!r}")
        for name, value in (self.sigma2 or {}).items():
            if not float(value) > 0:
                raise ValueError(f"DMLModel: sigma2 for class {name} must be > 0, got {value!r}")

    def _collect(self, frames: list[Atoms]):
        """Descriptors, forces, environments and neighbourhoods of every atom, grouped by class."""
        X: dict[str, list[np.ndarray]] = {}
        F: dict[str, list[np.ndarray]] = {}
        envs: dict[str, list[Environments]] = {}
        centres: dict[str, list[Neighbourhoods]] = {}
        for i, atoms in enumerate(tqdm(frames, desc="descriptors", unit="frame", disable=not self.progress)):
            desc = self.descriptor_.compute(atoms)
            forces = get_forces(atoms)
            for name, env in extract_environments(atoms, chemistry=self.chemistry_, frame=i, smooth=self.smooth).items():
                X.setdefault(name, []).append(desc[env.indices])
                F.setdefault(name, []).append(forces[env.indices])
                envs.setdefault(name, []).append(env)
                centres.setdefault(name, []).append(self.descriptor_.neighbourhoods(atoms, env.indices))
        return (
            {k: np.concatenate(v) for k, v in X.items()},
            {k: np.concatenate(v) for k, v in F.items()},
            {k: Environments.concatenate(v) for k, v in envs.items()},
            {k: Neighbourhoods.concatenate(v) for k, v in centres.items()},
        )

    def _sigma2(self, name: str) -> float:
        given = dict(self.sigma2 or {})
        return float(given.get(name, DEFAULT_SIGMA2))

    def _fit_class(self, name, X, F, env, centres, rng) -> tuple[ClassModel, dict[str, Any]]:
        scaler = MinMaxScaler().fit(X)
        Xs = scaler.transform(X)
        norms = np.linalg.norm(F, axis=1)

        ref_norm = rs_maximin(Xs, self.n_references_norm, random_state=rng)
        emlm = EMLM().fit(Xs[ref_norm], norms[ref_norm])

        usable = np.flatnonzero(norms > ZERO_FORCE)
        n_zero = len(norms) - len(usable)
        if n_zero:
            logger.info("class %s: %d atoms with |F| <= %g eV/Å left out of direction training", name, n_zero, ZERO_FORCE)
        if len(usable) == 0:
            raise ValueError(f"class {name}: every training force is zero, so no force direction can be learned")
        ref_dir = usable[rs_maximin(Xs[usable], self.n_references_direction, random_state=rng)]
        oamlm = OAMLM(sigma2=self._sigma2(name), loss=self.loss)
        oamlm.fit(Xs[ref_dir], env[ref_dir], F[ref_dir])

        pred = np.maximum(emlm.predict(Xs), 0.0)
        stats = {
            "n_atoms": int(len(X)),
            "n_references_norm": int(len(ref_norm)),
            "n_references_direction": int(len(ref_dir)),
            "n_zero_force_excluded": int(n_zero),
            "norm_rmse_train": float(np.sqrt(np.mean((pred - norms) ** 2))),
        }
        logger.info("class %s: %s", name, stats)
        kept = np.union1d(ref_norm, ref_dir)
        model = ClassModel(
            scaler, emlm, oamlm, centres.take(kept), np.searchsorted(kept, ref_norm), np.searchsorted(kept, ref_dir), norms[ref_norm]
        )
        return model, stats

    def partial_fit(self, frames: Iterable[Atoms]) -> DMLModel:
        """Add frames to a fitted model: their atoms join the references where they are new.

        Per class, RS-maximin continues from the present EMLM and OAMLM references over the new
        atoms (:func:`clusterforce.descriptors.selection.extend_maximin`): an atom farther from every reference
        than their median spacing becomes one, a repeat of a known environment does not. The
        scaler, the present references and the hyperparameters stay; the EMLM weights and the OAMLM
        B matrices are solved again where references were added; the repulsive baseline moves
        below any pair the new frames bring closer, so it stays zero on all training data. This is
        on-the-fly learning's update (``clusterforce learn``): a refit on all frames would choose
        the references again, and on the rings the structures the loop labels then displace
        references of the conformers the model was trained on. A model loaded from a file keeps
        no reference forces: refit it.
        """
        check_is_fitted(self, "models_")
        frames = list(frames)
        if not frames:
            return self
        if any(m.norm_targets is None or m.centres is None for m in self.models_.values()):
            raise ValueError("this DMLModel keeps no reference forces (loaded from a file?); call fit() on all frames instead")
        validate_frames(frames, need_energy=False, need_forces=True, hint=FORCES_HINT)
        X, F, envs, centres = self._collect(frames)
        unknown = sorted(set(X) - set(self.models_))
        if unknown:
            raise ValueError(
                f"the new frames have atoms of class(es) {', '.join(unknown)}, which the model has no data for; call fit() on all frames"
            )
        for name, Xn in X.items():
            m, stats = self.models_[name], self.training_["classes"][name]
            Xs, norms = m.scaler.transform(Xn), np.linalg.norm(F[name], axis=1)
            add_norm = _new_references(m.emlm.references_, Xs)
            usable = np.flatnonzero(norms > ZERO_FORCE)
            add_dir = usable[_new_references(m.oamlm.X_ref_, Xs[usable])]
            if add_norm.size:
                m.norm_targets = np.concatenate([m.norm_targets, norms[add_norm]])
                m.emlm = EMLM(**m.emlm.get_params()).fit(np.vstack([m.emlm.references_, Xs[add_norm]]), m.norm_targets)
            if add_dir.size:
                directions = np.vstack([m.oamlm.T_, F[name][add_dir]])
                environments = Environments.concatenate([m.oamlm.references_, envs[name][add_dir]])
                m.oamlm = OAMLM(**m.oamlm.get_params()).fit(np.vstack([m.oamlm.X_ref_, Xs[add_dir]]), environments, directions)
            new_rows = np.union1d(add_norm, add_dir)
            m.norm_index = np.concatenate([m.norm_index, len(m.centres) + np.searchsorted(new_rows, add_norm)])
            m.direction_index = np.concatenate([m.direction_index, len(m.centres) + np.searchsorted(new_rows, add_dir)])
            m.centres = Neighbourhoods.concatenate([m.centres, centres[name].take(new_rows)])
            _round_to_stored_precision(m)
            stats.update(n_atoms=stats["n_atoms"] + len(Xn), n_references_norm=len(m.norm_targets), n_references_direction=len(m.oamlm.T_))
            logger.info("class %s: %d new atoms, %d new norm and %d new direction references", name, len(Xn), len(add_norm), len(add_dir))
        self.training_["shortest_pairs"] = shortest_pairs_of(frames, self.r_cut, known=self.training_["shortest_pairs"])
        if self.baseline_r_s_ is not None:
            self.baseline_r_s_ = pair_wall.lower_pair_wall(self.baseline_r_s_, frames, self.descriptor_.species_)
        if getattr(self, "r_min_", None) is not None:
            self.r_min_ = pair_wall.training_r_min(frames, self.descriptor_.species_, known=self.r_min_)
        self.training_["n_frames"] += len(frames)
        self.training_["data_hash"] = None  # no longer the hash of one data set
        self.domain_ = domain.extended(getattr(self, "domain_", None), frames, self.elements)
        self._compiled = None
        return self

    # ---------------------------------------------------------------- prediction
    @property
    def elements(self) -> list[str]:
        """Chemical symbols the model was trained on."""
        check_is_fitted(self, "models_")
        return list(self.descriptor_.species_)

    @property
    def classes_(self) -> list[str]:
        """Atom classes with a trained model."""
        check_is_fitted(self, "models_")
        return sorted(self.models_)

    def _extra_results(self, result: dict[str, Any], out: dict[str, Any], atoms: Atoms, species: np.ndarray) -> dict[str, Any]:
        """dml's own entries of :meth:`predict`: ``norms`` (n,) eV/Angstrom and ``directions``
        (n, 3) unit vectors of the learned part (the baseline's forces left out; zero where the
        norm is zero); ``spread`` (n,) the OAMLM direction spread (dimensionless, 0 = the aligned
        references agree; ``uncertainty`` = ``norms * sqrt(2 spread)``, the chord of a direction
        error theta with 1 - cos(theta) = spread); ``classes`` (n,) class name per atom.
        Prediction raises ValueError for an atom whose class had no training data."""
        norms = out["norms"]
        learned = out["forces"]
        if self.baseline_r_s_ is not None:
            learned = learned - pair_wall.energy_forces(self.baseline_r_s_, atoms, species)[1]
        directions = np.divide(learned, norms[:, None], out=np.zeros_like(learned), where=norms[:, None] > 0)
        classes = np.asarray(self.classes_, dtype=str)[out["class_index"].astype(int)]
        return {**result, "norms": norms, "directions": directions, "spread": out["spread"], "classes": classes}

    def predict_forces(self, atoms: Atoms) -> np.ndarray:
        """Forces (n, 3) in eV/Angstrom for one structure."""
        return self.predict(atoms)["forces"]

    # -------------------------------------------------------------- model file
    def _file_contents(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The arrays and metadata of the model file (:meth:`save`, the compiled predictor)."""
        check_is_fitted(self, "models_")
        arrays: dict[str, np.ndarray] = {}
        models: dict[str, Any] = {}
        for name, m in self.models_.items():
            for part, state in (("scaler", m.scaler.state_dict()), ("emlm", m.emlm.state_dict()), ("oamlm", m.oamlm.state_dict())):
                for key, value in state.items():
                    stored = f"{part}/{key}"
                    if stored in _REFERENCE_DESCRIPTORS:
                        # A model read from a file that stores descriptors keeps that layout (float32).
                        if m.centres is None:
                            arrays[f"classes/{name}/{stored}"] = value.astype(np.float32)
                        continue
                    arrays[f"classes/{name}/{stored}"] = value.astype(np.float32) if stored in FLOAT32_ARRAYS else value
            if m.centres is not None:
                arrays[f"classes/{name}/emlm/reference_index"] = m.norm_index.astype(np.int64)
                arrays[f"classes/{name}/oamlm/reference_index"] = m.direction_index.astype(np.int64)
                arrays.update({f"classes/{name}/centres/{k}": v for k, v in m.centres.to_arrays().items()})
            stats = self.training_["classes"][name]
            models[name] = {
                "emlm": m.emlm.get_params(),
                "oamlm": m.oamlm.get_params(),
                "n_references_norm": stats["n_references_norm"],
                "n_references_direction": stats["n_references_direction"],
            }
        metadata = {
            "elements": self.descriptor_.species_,
            "chemistry": self.chemistry_,
            "classes": self.classes_,
            "descriptor": self.descriptor_.params(),
            # SOAP settings are stored once, under "descriptor" (the C++ reader takes them there).
            "hyperparameters": {k: v for k, v in self.get_params().items() if k not in _SOAP_FIELDS},
            "training": self.training_,
            "models": models,
        }
        if getattr(self, "baseline_r_s_", None) is not None:
            wall_arrays, wall_metadata = pair_wall.file_entries(self.baseline_r_s_)
            arrays.update(wall_arrays)
            metadata.update(wall_metadata)
        if getattr(self, "r_min_", None) is not None:
            arrays[pair_wall.R_MIN_FIELD] = np.asarray(self.r_min_, dtype=float)
        return arrays, metadata

    @classmethod
    def _from_file(cls, mf: modelfile.ModelFile) -> DMLModel:
        meta = mf.metadata
        descriptor = SoapDescriptor.from_params(meta["descriptor"])
        # Files written before the smooth environments have no "smooth": they keep the hard rules.
        model = cls(**{"smooth": False, **meta["hyperparameters"], **descriptor.soap_params.to_dict()})
        model.descriptor_ = descriptor
        model.chemistry_ = meta["chemistry"]
        model.training_ = meta["training"]
        # Files written before the baseline existed have none: they predict as they did.
        model.baseline = "baseline/r_s" in mf.arrays
        model.baseline_r_s_ = mf.arrays.get("baseline/r_s")
        model.r_min_ = mf.arrays.get(pair_wall.R_MIN_FIELD)  # None in files from before the table
        model.models_ = {}
        for name in meta["classes"]:
            params = meta["models"][name]
            prefix = f"classes/{name}/"
            state = {
                part: {k[len(prefix) + len(part) + 1 :]: v for k, v in mf.arrays.items() if k.startswith(f"{prefix}{part}/")}
                for part in ("scaler", "emlm", "oamlm", "centres")
            }
            for part, values in state.items():
                if not values and part != "centres":
                    raise modelfile.ModelFileError(f"{mf.path}: fields '{prefix}{part}/*' are missing")
            scaler = MinMaxScaler.from_state_dict(state["scaler"])
            centres, norm_index, direction_index = _reference_rows(descriptor, scaler, state, f"{mf.path}: class {name}")
            model.models_[name] = ClassModel(
                scaler,
                EMLM.from_state_dict(state["emlm"], params["emlm"]),
                OAMLM.from_state_dict(state["oamlm"], params["oamlm"]),
                centres,
                norm_index,
                direction_index,
            )
        return model


def _new_references(references: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Rows of ``candidates`` that join ``references`` (all of them while there is no spacing to keep)."""
    return extend_maximin(references, candidates) if len(references) >= 2 else np.arange(len(candidates))


def _reference_rows(descriptor: SoapDescriptor, scaler: MinMaxScaler, state: dict[str, dict[str, np.ndarray]], where: str):
    """Put the reference descriptors into the EMLM and OAMLM states (in place), recomputed from
    the stored centres; returns the centres and the two row-index arrays (all None for a file
    that stores the descriptors themselves)."""
    if not state["centres"]:
        return None, None, None
    centres = Neighbourhoods.from_arrays(state["centres"], f"{where}: 'centres'")
    X = scaler.transform(descriptor.compute_neighbourhoods(centres))
    rows = {}
    for part, key in (("emlm", "references"), ("oamlm", "X_ref")):
        index = np.asarray(state[part].get("reference_index", np.empty(0)), dtype=np.int64)
        if index.ndim != 1 or index.size == 0 or index.min() < 0 or index.max() >= len(centres):
            raise ValueError(f"{where}: '{part}/reference_index' must list rows of the {len(centres)} centres")
        state[part][key] = X[index]
        rows[part] = index
    return centres, rows["emlm"], rows["oamlm"]
