"""Energy and forces are continuous when atoms cross every cutoff of a gap model (2b, 3b, SOAP)."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from clusterforce.core.calculator import Calculator
from clusterforce.kinds.gap import Soap, ThreeBody, TwoBody
from clusterforce.kinds.gap.model import GAPModel

R2, R3, RS = 5.0, 4.2, 4.6  # cutoffs of the three terms, Angstrom


def _frames():
    frames = []
    rng = np.random.default_rng(0)
    for _ in range(4):
        atoms = Icosahedron("Cu", 2)
        atoms.positions += rng.normal(0.0, 0.1, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        frames.append(atoms)
    return frames


@pytest.fixture(scope="module", params=[1.0, 0.0], ids=["smooth", "abrupt"])
def model(request, tmp_path_factory):
    terms = [
        TwoBody(r_cut=R2, width=1.0, n_sparse=10),
        ThreeBody(r_cut=R3, width=1.0, n_sparse=15),
        Soap(r_cut=RS, r_cut_width=request.param, n_max=3, l_max=2, sigma=0.5, n_sparse=15),
    ]
    path = tmp_path_factory.mktemp("cut") / "m.cfm"
    GAPModel(terms=terms, progress=False).fit(_frames()).save(path)
    return request.param, Calculator(str(path))


def _energy_forces(calc, positions):
    atoms = Atoms(f"Cu{len(positions)}", positions=positions)
    atoms.calc = calc
    return atoms.get_potential_energy(), atoms.get_forces()


def _steps_across(calc, place, cutoffs, h=1e-7):
    """Largest energy change (eV) and force change (eV/A) over a step h straddling each cutoff,
    less what the force explains (the step's work)."""
    worst_e, worst_f = 0.0, 0.0
    for rc in cutoffs:
        (e_in, f_in), (e_out, f_out) = _energy_forces(calc, place(rc - h / 2)), _energy_forces(calc, place(rc + h / 2))
        worst_e = max(worst_e, abs(e_out - e_in) - np.abs(f_in).max() * h * 2)
        worst_f = max(worst_f, np.abs(f_out - f_in).max())
    return worst_e, worst_f


def _pair(r):
    return np.array([[0.0, 0.0, 0.0], [0.0, 0.0, r]])


def _triangle(r):
    # A third atom moved out along a line: it crosses each cutoff with respect to atom 0 while
    # staying 2.5 A from atom 1 only at the start (so triplets and SOAP neighbours both change).
    return np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [0.0, r, 0.0]])


def test_pair_and_triangle_scans_have_no_steps(model):
    width, calc = model
    soap_neighbour_cutoff = RS if width > 0 else RS + 0.5 * np.sqrt(-2 * np.log(1e-3))
    cutoffs = [R2, R3, soap_neighbour_cutoff]
    for place in (_pair, _triangle):
        de, df = _steps_across(calc, place, cutoffs)
        if width > 0:
            assert de <= 1e-8, f"{place.__name__}: energy step {de:.2e} eV at a cutoff"
            assert df <= 1e-5, f"{place.__name__}: force jump {df:.2e} eV/A at a cutoff"
        else:
            # Without a transition SOAP's neighbour cutoff leaves a step: the test sees it.
            assert de > 1e-8 or df > 1e-5


def test_smooth_model_scan_is_continuous_everywhere(model):
    width, calc = model
    if width == 0:
        pytest.skip("the abrupt model is the negative control above")
    r = np.linspace(2.2, 5.4, 1601)
    energies = np.array([_energy_forces(calc, _pair(x))[0] for x in r])
    forces = np.array([_energy_forces(calc, _pair(x))[1][1, 2] for x in r])
    # Trapezoid rule: E(r+h) - E(r) = -h (F(r) + F(r+h)) / 2 up to h^3 E''' / 12.
    residual = np.diff(energies) + np.diff(r) * 0.5 * (forces[1:] + forces[:-1])
    assert np.abs(residual).max() < 1e-6
    assert np.all(np.abs(energies[r >= max(R2, RS)] - energies[-1]) < 1e-12)
