"""Isolated-atom energies e0 (--e0) and the composition / charge warning of energy models."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _frames import rattled_icosahedron
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from clusterforce import Calculator
from clusterforce.core import modelfile, registry
from clusterforce.kinds import composition
from clusterforce.kinds.gap.model import GAPModel
from clusterforce.kinds.gap.terms import TwoBody

TERMS = [TwoBody(delta=1.0, r_cut=4.5, width=1.0, theta=0.6, n_sparse=8)]
E0 = {"Cu": -0.3, "Au": -0.1}


def cluster(seed: int, n_au: int = 3):
    """Cu(13-n_au)Au(n_au) icosahedron, rattled, with EMT energy and forces."""
    atoms = rattled_icosahedron(seed, "Cu", substitute={79: tuple(range(1, 1 + n_au))})
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.info["method"] = "emt"
    return atoms


def fit(frames, **kwargs) -> GAPModel:
    return GAPModel(terms=TERMS, calibrate_uncertainty=False, baseline=False, progress=False, **kwargs).fit(frames)


@pytest.fixture(scope="module")
def frames():
    return [cluster(seed) for seed in range(5)]


@pytest.fixture(scope="module")
def fitted(frames) -> GAPModel:
    with pytest.warns(UserWarning, match="do not determine the per-element energies"):
        return fit(frames)


def composition_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "composition" in str(w.message) or "charge" in str(w.message)]


def test_one_composition_warns_at_fit_and_records_the_training_domain(fitted):
    meta = fitted._file_contents()[1]
    assert meta["e0_source"] == "fit"
    assert meta["training"]["compositions"] == [[10, 3]]  # species order: Cu, Au
    assert meta["training"]["charges"] == [0.0]


def test_another_composition_warns_exactly_once(fitted):
    same, other = cluster(11), cluster(12, n_au=4)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fitted.predict(same)
        assert composition_warnings(record) == []
        for _ in range(3):
            fitted.predict(other)
    texts = composition_warnings(record)
    assert len(texts) == 1, texts
    assert "composition Cu9Au4" in texts[0] and "Cu10Au3" in texts[0] and "--e0 reference" in texts[0]


def test_the_calculator_gets_the_warning_from_the_model_file(fitted, tmp_path):
    path = tmp_path / "cuau.cfm"
    fitted.save(path)
    atoms = cluster(13, n_au=5)
    atoms.calc = Calculator(str(path))
    with pytest.warns(UserWarning, match="composition Cu8Au5"):
        atoms.get_potential_energy()


def test_a_charge_outside_the_training_charges_warns(fitted):
    atoms = cluster(14)
    atoms.info["charge"] = -1
    with pytest.warns(UserWarning, match=r"charge -1 e is not among the training charges \(0\)") as record:
        fitted.predict(atoms)
    assert not any("composition" in str(w.message) for w in record)


def test_compositions_spanning_the_elements_fix_e0_and_warn_about_nothing():
    frames = [cluster(seed, n_au=3) for seed in range(3)] + [cluster(seed, n_au=4) for seed in range(3, 6)]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = fit(frames)
        model.predict(cluster(20, n_au=6))
    assert composition_warnings(record) == [] and not any("do not determine" in str(w.message) for w in record)


def shifted_energy(atoms, shift: dict[str, float]):
    """A copy of ``atoms`` whose reference energy is raised by shift[element] per atom (eV)."""
    out = atoms.copy()
    extra = sum(shift[s] for s in atoms.get_chemical_symbols())
    out.calc = SinglePointCalculator(out, energy=atoms.get_potential_energy() + extra, forces=atoms.get_forces())
    return out


def test_explicit_e0_is_subtracted_at_training_and_added_back_per_atom(frames):
    d = {"Cu": 1.0, "Au": 2.0}
    mixed = frames + [cluster(seed, n_au=4) for seed in range(60, 62)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e0 given: no rank warning
        base = fit(mixed, e0=E0)
        # Every reference raised by sum d[Z_i] and e0 raised by d: the learned part sees the same targets.
        shifted = fit([shifted_energy(a, d) for a in mixed], e0={s: E0[s] + d[s] for s in E0})
    for atoms, shift in ((cluster(30), 10 * 1.0 + 3 * 2.0), (cluster(31, n_au=5), 8 * 1.0 + 5 * 2.0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, b = base.predict(atoms), shifted.predict(atoms)
        assert b["energy"] - a["energy"] == pytest.approx(shift, abs=1e-8)
        per_atom = np.array([d[s] for s in atoms.get_chemical_symbols()])
        np.testing.assert_allclose(b["energies"] - a["energies"], per_atom, rtol=0, atol=1e-8)
        np.testing.assert_allclose(b["forces"], a["forces"], rtol=0, atol=1e-8)


def test_a_model_with_e0_saved_and_loaded_predicts_identically(frames, tmp_path):
    model = fit(frames, e0=E0)
    path = tmp_path / "e0.cfm"
    model.save(path)
    meta = modelfile.load(path).metadata
    assert meta["e0"] == E0 and meta["e0_source"] == "given"
    loaded = registry.load_model(path)
    atoms = cluster(40, n_au=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = model.predict(atoms), loaded.predict(atoms)
    assert a["energy"] == b["energy"]
    np.testing.assert_array_equal(a["forces"], b["forces"])
    with pytest.raises(ValueError, match="'e0' lacks an isolated-atom energy for Au"):
        fit(frames, e0={"Cu": -0.3})


def test_reference_e0_is_the_isolated_atom_energy_of_the_reference(frames):
    values, source = composition.resolve("reference", frames, ["Cu", "Au"])  # info['method'] is emt
    assert source == "reference:emt"
    for symbol, value in values.items():
        atom = cluster(0)[[0]]
        atom.symbols[0] = symbol
        atom.calc = EMT()
        assert value == pytest.approx(atom.get_potential_energy(), abs=1e-12)
    assert composition.resolve("reference:emt", frames, ["Cu", "Au"]) == (values, "reference:emt")


def test_e0_flag_is_shared_by_the_energy_kinds_and_parsed_once():
    for kind in ("gap", "sann", "dart"):
        assert "--e0" in registry.kind_options(kind)
    assert "--e0" not in registry.kind_options("dml")
    assert composition.parse_e0_flag(["Au=-2.137,S=-3.5"]) == {"Au": -2.137, "S": -3.5}
    assert composition.parse_e0_flag(["Au=-2.137", "S=-3.5"]) == {"Au": -2.137, "S": -3.5}
    assert composition.parse_e0_flag(["reference:gfn1-xtb"]) == "reference:gfn1-xtb"
    assert composition.parse_e0_flag(["fit"]) == "fit" and composition.parse_e0_flag(None) is None
    with pytest.raises(ValueError, match="--e0 expects ELEMENT=EV items such as Au=-2.137, or fit, reference"):
        composition.parse_e0_flag(["Au"])


def test_partial_fit_adds_the_new_compositions(frames):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit(frames)
    model.partial_fit([cluster(seed, n_au=4) for seed in range(50, 52)])
    assert model.training_["compositions"] == [[9, 4], [10, 3]]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.predict(cluster(53, n_au=6))
    assert composition_warnings(record) == []


def test_gfn1_xtb_isolated_atoms_use_the_ground_state_spin_and_the_data_temperature():
    tblite = pytest.importorskip("tblite.ase")
    from ase import Atoms

    frames = [cluster(0)]
    frames[0].info["electronic_temperature_K"] = 300.0
    assert composition.data_electronic_temperature(frames) == 300.0
    values = composition.reference_energies("gfn1-xtb", ["S"], composition.data_electronic_temperature(frames))
    energies = {}
    for multiplicity in (1, 3):  # ASE's ground state of S is a triplet
        atom = Atoms("S")
        atom.calc = tblite.TBLite(method="GFN1-xTB", electronic_temperature=300.0, multiplicity=multiplicity, verbosity=0)
        energies[multiplicity] = atom.get_potential_energy()
    assert values["S"] == pytest.approx(energies[3], abs=1e-8)
    assert abs(energies[3] - energies[1]) > 1e-3
