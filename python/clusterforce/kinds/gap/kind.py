"""The ``gap`` kind's record (see :mod:`clusterforce.core.registry`): its ``clusterforce train`` flags,
training from those flags, and evaluation.

Every flag may also come from ``--config gap.yaml`` (keys = flag names).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.data import atomic_numbers

from clusterforce.core.options import add_parameter_flags, parameter_dest
from clusterforce.core.registry import add_baseline_flag, add_e0_flag
from clusterforce.data.metrics import collect_predictions, energy_force_metrics, print_table
from clusterforce.data.plots import parity_plots
from clusterforce.kinds.composition import parse_e0_flag
from clusterforce.kinds.gap.mapping import map_model
from clusterforce.kinds.gap.model import GAPModel
from clusterforce.kinds.gap.terms import PRESET_NOISE, PRESETS, TERM_TYPES, Soap, ThreeBody, TwoBody, preset_for

ESTIMATOR = GAPModel
SUMMARY = "GAP-style sparse Gaussian process (2b + 3b + SOAP), energies and forces"

logger = logging.getLogger(__name__)

# Term fields exposed as --FIELD-TERM flags (the term suffix keeps the 2b, 3b and SOAP fields apart).
_FLAG_HELP = {
    "delta": "energy scale (eV)",
    "r_cut": "cutoff radius (Angstrom)",
    "width": "cutoff transition width (Angstrom)",
    "theta": "kernel length scale (Angstrom)",
    "n_sparse": "sparse points per species channel",
    "n_max": "radial order",
    "l_max": "angular order",
    "sigma": "atomic Gaussian width (Angstrom)",
    "r_cut_width": "cutoff transition width (Angstrom; 0 = abrupt)",
    "zeta": "power of the normalised dot product (2: a quadratic form, cost free of n_sparse)",
    "sparse_method": "sparse-point selection",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the gap flags (one argument group) to a ``train`` parser."""
    g = parser.add_argument_group("gap options (2b + 3b + SOAP sparse Gaussian process)")
    g.add_argument(
        "--preset",
        choices=["auto", *PRESETS],
        default="auto",
        help="defaults of every --FIELD-TERM flag below: gap-sodium (the paper's Table 1), metal (5.5 A SOAP, n_max 8), "
        "ligand (4.0 A SOAP, n_max 6, l_max 4); auto (default, logged): gap-sodium for alkali metals, metal for other "
        "metals, ligand with a non-metal",
    )
    g.add_argument(
        "--terms", nargs="+", choices=sorted(TERM_TYPES), default=["2b", "3b", "soap"], help="terms of the model (default: 2b 3b soap)"
    )
    for cls in (TwoBody, ThreeBody, Soap):
        # 2b/3b always use the uniform grid, so only SOAP exposes its sparse method.
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name != "sparse_method" or cls is Soap}
        add_parameter_flags(
            g,
            defaults,
            {k: f"{cls.kind} {v}" for k, v in _FLAG_HELP.items()},
            suffix=cls.kind,
            choices={"sparse_method": ("cur", "fps")},
            unset=True,
        )
    g.add_argument(
        "--sigma-energy", type=float, metavar="X", help="energy noise, eV/atom (default: the preset's: gap-sodium 0.001, else 0.01)"
    )
    g.add_argument("--sigma-force", type=float, metavar="X", help="force noise, eV/Angstrom (default: the preset's, 0.02)")
    add_e0_flag(g)
    g.add_argument("--jitter", type=float, default=1e-10, metavar="X", help="relative Cholesky jitter (default: 1e-10)")
    g.add_argument("--no-variance", action="store_true", help="skip the posterior matrix (no predictive variances)")
    g.add_argument(
        "--no-calibrate-uncertainty", action="store_true",
        help="keep the raw GP force standard deviation (default: scaled per element to the force errors on groups of "
        "frames left out in turn)",
    )  # fmt: skip
    g.add_argument("--max-chunk-mb", type=float, default=256.0, metavar="MB", help="memory for buffered design rows (default: 256)")
    g.add_argument(
        "--map",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="tabulate the 2b/3b terms on splines after the fit (as 'clusterforce map'): several times faster, "
        "~1e-4 eV/A off (default: on; the error is logged)",
    )
    add_baseline_flag(g, default=GAPModel().baseline)


def preset_from_args(args: argparse.Namespace, elements: Sequence[str]) -> str:
    """The preset ``--preset`` names, or for ``auto`` the one for ``elements`` (chemical symbols)."""
    return preset_for(elements) if args.preset == "auto" else args.preset


def terms_from_args(args: argparse.Namespace, elements: Sequence[str]) -> tuple:
    """The term objects the flags describe, in the order of ``--terms``: the preset's values for
    ``elements`` (chemical symbols of the training data) overridden by every flag given."""
    preset = preset_from_args(args, elements)
    base = {t.kind: t for t in PRESETS[preset]}
    out = []
    for kind in args.terms:
        given = {
            f.name: getattr(args, parameter_dest(f.name, kind))
            for f in dataclasses.fields(TERM_TYPES[kind])
            if getattr(args, parameter_dest(f.name, kind), None) is not None
        }
        term = dataclasses.replace(base[kind], **given)
        term.validate()
        out.append(term)
    logger.info("gap preset %s for %s%s", preset, "".join(elements), " (--preset auto)" if args.preset == "auto" else "")
    return tuple(out)


def train(frames: Sequence[Atoms], args: argparse.Namespace) -> GAPModel:
    """Fit a GAP model on ``frames`` with the hyperparameters in ``args``; returns the model."""
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()}, key=lambda s: atomic_numbers[s])
    preset = preset_from_args(args, elements)
    model = GAPModel(
        terms=terms_from_args(args, elements),
        e0=parse_e0_flag(args.e0),
        sigma_energy=PRESET_NOISE[preset][0] if args.sigma_energy is None else args.sigma_energy,
        sigma_force=PRESET_NOISE[preset][1] if args.sigma_force is None else args.sigma_force,
        jitter=args.jitter,
        variance=not args.no_variance,
        calibrate_uncertainty=not args.no_calibrate_uncertainty,
        baseline=getattr(args, "baseline", None) is not False,
        max_chunk_mb=args.max_chunk_mb,
        random_state=getattr(args, "seed", 0),
        progress=not getattr(args, "quiet", False),
    )
    params = {k: v for k, v in model.get_params().items() if k != "terms"}
    params["terms"] = [t.to_dict() for t in model.terms]
    logger.info("gap hyperparameters: %s", json.dumps(params, default=str))
    model.fit(frames, comm=_mpi_comm())
    t = model.training_
    logger.info(
        "gap fit: %d frames, %s sparse points, %.1f s; training energy RMSE %.3f meV/atom, force RMSE %.4f eV/A",
        t["n_frames"],
        t["n_sparse"],
        t["fit_seconds"],
        t["metrics"]["energy_rmse_mev_per_atom"] or float("nan"),
        t["metrics"]["force_rmse"] or float("nan"),
    )
    return model


def finish(model: GAPModel, args: argparse.Namespace) -> None:
    """With ``--map``, tabulate the fitted model's 2b/3b terms on splines (what ``clusterforce map`` does)."""
    if not args.map or all(term.kind == "soap" for term in model.terms):
        return
    for entry in map_model(model)["terms"]:
        logger.info(
            "mapped %s term on splines: largest error of the table %.2e eV (RMS %.2e eV)",
            entry["kind"],
            entry["table_max_error_eV"],
            entry["table_rms_error_eV"],
        )


def _mpi_comm():
    """COMM_WORLD when started by an MPI launcher with more than one rank, else None."""
    import os

    if int(os.environ.get("PMI_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))) <= 1:
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def evaluate(model: GAPModel, frames: Sequence[Atoms], args: argparse.Namespace) -> dict[str, Any]:
    """Energy and force errors of a GAP model on reference frames, printed as a table.

    Returns ``{"kind": "gap", "energy_rmse_mev_per_atom", "energy_mae_mev_per_atom",
    "force_rmse", "force_mae", "n_frames"}`` (forces in eV/Angstrom; a metric without
    reference data is None). With ``args.plots`` set, writes ``energy_parity.png`` and
    ``force_parity.png`` there.
    """
    pred_e, ref_e, n_atoms, pred_f, ref_f = collect_predictions(model, frames, progress=not getattr(args, "quiet", False))
    m = energy_force_metrics(pred_e, ref_e, n_atoms, pred_f, ref_f)
    if getattr(args, "plots", None):
        parity_plots(Path(args.plots), pred_e, ref_e, n_atoms, pred_f, ref_f, model_name="GAP")
    report = {
        "kind": "gap",
        "energy_rmse_mev_per_atom": m["energy_rmse_mev_per_atom"],
        "energy_mae_mev_per_atom": m["energy_mae_mev_per_atom"],
        "force_rmse": m["force_rmse"],
        "force_mae": m["force_mae"],
        "n_frames": len(frames),
    }
    print_table(report)
    return report
