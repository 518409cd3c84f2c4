"""Workflows where the model has no data or breaks: extrapolating structures are rejected or stop a
run, NaN forces stop it naming the step, and a broken input structure is one line and exit 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.io import write
from clusterforce.cli import main
from clusterforce.references import LennardJones
from clusterforce.workflows.isomers import RelaxationError, rejection_reason, relax
from clusterforce.workflows.optimize import NonFiniteError
from clusterforce.workflows.replicas import ReplicaSettings, run_replica
from clusterforce.workflows.search import LJ_NEAREST, basin_hopping, md_quench, random_cluster

LJ13 = -44.326801


class FlagsDeepMinima(LennardJones):
    """Lennard-Jones that flags every atom as extrapolating below ``floor`` (epsilon): a stub for a
    model whose data ends there."""

    def __init__(self, floor: float = -40.0):
        super().__init__()
        self.floor = floor

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["extrapolating"] = np.full(len(self.atoms), self.results["energy"] < self.floor)


class Glue(Calculator):
    """Gaussian attraction between every pair and no repulsion: every relaxation collapses."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        diff = self.atoms.positions[:, None, :] - self.atoms.positions[None, :, :]
        g = np.exp(-(diff**2).sum(-1) / 4.0)
        self.results = {"energy": -0.5 * (g.sum() - len(g)), "forces": -(g[:, :, None] * diff).sum(axis=1) / 2.0}


class NanAfter(LennardJones):
    """Lennard-Jones with a NaN energy and NaN forces on atom 1 from its ``k``-th call on."""

    def __init__(self, k: int):
        super().__init__()
        self.k, self.calls = k, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.calls >= self.k:
            self.results["energy"] = np.nan
            self.results["forces"][1] = np.nan


def glue() -> Glue:
    """Factory for ``--reference test_workflow_guards:glue``."""
    return Glue()


def test_basin_hopping_rejects_extrapolating_minima_and_never_moves_there():
    start = random_cluster(13, "Ar", nearest=LJ_NEAREST, seed=0)
    store = basin_hopping(start, FlagsDeepMinima(), steps=150, kt=0.8, step_size=0.36, seed=0, progress=False)
    assert store.rejected.get("extrapolating", 0) > 0 and store.minima
    assert min(m.energy for m in store.minima) >= -40.0  # LJ13 (-44.33) may be found, but is never stored
    # The same search without flags stores the deeper minima it rejected.
    plain = basin_hopping(start, LennardJones(), steps=150, kt=0.8, step_size=0.36, seed=0, progress=False)
    assert plain.lowest.energy < -40.0 and plain.rejected == {}


def test_a_collapsing_model_is_rejected_with_the_pair_named():
    start = random_cluster(5, "Ar", nearest=LJ_NEAREST, seed=0)
    relaxed, _, _ = relax(start, Glue(), fmax=1e-4)
    reason, message = rejection_reason(relaxed)
    assert reason == "collapsed" and re.fullmatch(r"atoms \d and \d are 0\.\d{3} Angstrom apart \(closer than 0\.5 Angstrom\)", message)
    with pytest.raises(RelaxationError, match=r"relaxed start structure is rejected \(collapsed\)"):
        basin_hopping(start, Glue(), steps=3, kt=0.8, step_size=0.36, progress=False)


def test_nan_in_a_relaxation_names_the_force_evaluation_and_rejects_the_step():
    start = random_cluster(7, "Ar", nearest=LJ_NEAREST, seed=1)
    with pytest.raises(NonFiniteError, match=r"local relaxation, force evaluation 3: the energy is nan"):
        relax(start, NanAfter(3))
    calc = NanAfter(10**9)
    relax(start, calc)
    calc.k = 2 * calc.calls + 40  # basin hopping relaxes the start again; a later step meets the NaN
    store = basin_hopping(start, calc, steps=20, kt=0.8, step_size=0.36, progress=False)
    # Every step is either stored (a new minimum or a hit) or rejected, and none stored is NaN.
    assert store.rejected["non-finite"] >= 1 and sum(m.hits for m in store.minima) + store.rejected["non-finite"] == 21
    assert all(np.isfinite(m.energy) for m in store.minima)


def test_md_quench_stops_at_the_md_step_that_breaks():
    start = random_cluster(7, "Ar", nearest=LJ_NEAREST, seed=1)
    calc = NanAfter(10**9)
    relax(start, calc)
    calc.k = calc.calls + 25
    with pytest.raises(NonFiniteError, match=r"^md-quench MD step \d+: the position or force of atoms 1 \(Ar\) is not finite"):
        md_quench(start, calc, steps=500, temperature=30.0, quench_every=100, progress=False)


def test_search_command_counts_rejections_in_its_json(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    summary = tmp_path / "s.json"
    argv = ["search", "random:13", "--reference", "test_workflow_guards:flagging", "--steps", "100", "--seed", "0",
            "--kt", "0.8", "--step-size", "0.36",
            "--db", str(tmp_path / "m.db"), "--json", str(summary), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(summary.read_text())
    assert report["rejected"]["extrapolating"] > 0 and min(report["energies"]) >= -44.0


def flagging() -> FlagsDeepMinima:
    """Factory for ``--reference test_workflow_guards:flagging``: only the LJ13 icosahedron is flagged."""
    return FlagsDeepMinima(floor=-44.0)


def test_search_command_with_a_collapsing_model_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    argv = ["search", "random:5:Ar", "--reference", "test_workflow_guards:glue", "--steps", "3", "--db", str(tmp_path / "m.db"), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("clusterforce search: error: basin hopping: the relaxed start structure is rejected (collapsed)")
    assert "\n" not in err and not (tmp_path / "m.db").exists()


# ----------------------------------------------------------------- the command-line boundary
def _broken(tmp_path: Path, kind: str) -> Path:
    atoms = Icosahedron("Cu", 2)
    if kind == "duplicate":
        atoms.positions[7] = atoms.positions[3]
    else:
        atoms.positions[5, 1] = np.nan
    path = tmp_path / f"{kind}.xyz"
    write(path, atoms, format="extxyz")
    return path


EXPECTED = {"duplicate": r"atoms 3 and 7 at 0\.000 Angstrom", "nan": r"positions are not finite for atoms 5"}


@pytest.mark.parametrize("kind", ["duplicate", "nan"])
@pytest.mark.parametrize("command", ["optimize", "search", "md", "evaluate"])
def test_a_broken_input_structure_is_one_line_and_exit_2(cu13_gap_model, tmp_path, capsys, command, kind):
    path = _broken(tmp_path, kind)
    argv = {
        "optimize": ["optimize", cu13_gap_model, str(path), "-o", str(tmp_path / "o.traj"), "--quiet"],
        "search": ["search", str(path), "--reference", cu13_gap_model, "--steps", "2", "--db", str(tmp_path / "m.db"), "--quiet"],
        "md": [
            "md",
            cu13_gap_model,
            str(path),
            "--temperatures",
            "300",
            "--steps",
            "10",
            "--engine",
            "ase",
            "-o",
            str(tmp_path / "r"),
            "--quiet",
        ],
        "evaluate": ["evaluate", cu13_gap_model, str(path), "--quiet"],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert re.match(rf"clusterforce {command}: error: {re.escape(str(path))}(, frame 0)?: .*{EXPECTED[kind]}", err), err


def test_optimize_partwise_classes_come_from_the_model(cu13_gap_model, tmp_path, capsys):
    path = tmp_path / "cu.xyz"
    write(path, Icosahedron("Cu", 2))
    argv = ["optimize", cu13_gap_model, str(path), "--steps", "2", "-o", str(tmp_path / "o.traj"), "--quiet"]
    assert main([*argv, "--partwise", "core:2"]) == 2
    assert "this model defines no atom classes (core, outer" in capsys.readouterr().err
    assert main([*argv, "--partwise", "Cu:2"]) == 0


# ----------------------------------------------------------------- MD
class _NanModel:
    """A duck-typed energy model: EMT until its ``k``-th prediction, NaN forces on atom 4 after."""

    kind = "test"
    implemented_properties = ("energy", "forces")
    elements = ["Cu"]

    def __init__(self, k: int, flag_from: int | None = None):
        self.k, self.flag_from, self.calls = k, flag_from, 0

    def predict(self, atoms: Atoms, *, properties=None) -> dict:
        self.calls += 1
        ref = atoms.copy()
        ref.calc = EMT()
        out = {"energy": ref.get_potential_energy(), "forces": ref.get_forces()}
        if self.calls >= self.k:
            out["forces"][4] = np.nan
        out["extrapolating"] = np.zeros(len(atoms), dtype=bool)
        if self.flag_from is not None and self.calls >= self.flag_from:
            out["extrapolating"][[2, 6]] = True
        return out


def test_ase_replica_stops_at_the_nan_step_and_warns_once_when_extrapolating(tmp_path, monkeypatch, caplog):
    model = _NanModel(k=38, flag_from=12)
    monkeypatch.setattr("clusterforce.core.registry.load_model", lambda path: model)
    settings = ReplicaSettings(steps=100, sample_every=5, checkpoint_every=10, engine="ase", thermostat="langevin")
    status = run_replica("stub.cfm", Icosahedron("Cu", 2), 300.0, settings, tmp_path)
    assert status == "non-finite"
    record = json.loads((tmp_path / "T00300.00" / "status.json").read_text())
    # Prediction 1 is the start, prediction k + 1 is MD step k.
    assert record["message"].startswith("the 300 K replica's MD step 37: the position or force of atoms 4 (Cu) is not finite")
    assert record["first_extrapolating_step"] == 11
    warnings = [r.getMessage() for r in caplog.records if "extrapolating" in r.getMessage()]
    assert len(warnings) == 1 and "MD step 11: the model flags atoms 2 (Cu), 6 (Cu)" in warnings[0]
    # A stopped replica is not continued by a rerun (it would stop again).
    assert run_replica("stub.cfm", Icosahedron("Cu", 2), 300.0, settings, tmp_path) == "non-finite"
