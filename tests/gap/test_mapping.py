"""`clusterforce map`: 2b/3b terms tabulated on B-splines predict like the exact terms.

References: scipy's BSpline/NdBSpline for the C++ spline evaluation, the exact term's centre
energy for the tabulated functions, finite differences for the mapped forces.
"""

import json

import numpy as np
import pytest
from _frames import rattled_icosahedron
from ase import Atoms
from ase.calculators.emt import EMT
from clusterforce import _kernels
from clusterforce.cli import main
from clusterforce.kinds.gap import ThreeBody, TwoBody
from clusterforce.kinds.gap.mapping import MapGrid, map_model, tabulate
from clusterforce.kinds.gap.model import GAPModel
from scipy.interpolate import BSpline, NdBSpline

R2, R3 = 5.0, 4.0


def _alloy(seed: int, shells: int = 2) -> Atoms:
    # three species channels of every kind, Au the higher Z
    return rattled_icosahedron(seed, "Cu", shells=shells, substitute={79: (1, 4, 9), 47: (2, 7)})


@pytest.fixture(scope="module")
def trained():
    frames = []
    for seed in range(5):
        atoms = _alloy(seed)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        frames.append(atoms)
    terms = [TwoBody(delta=1.0, r_cut=R2, width=1.0, n_sparse=12), ThreeBody(delta=0.3, r_cut=R3, width=1.0, n_sparse=20)]
    return GAPModel(terms=terms, progress=False).fit(frames)


@pytest.fixture(scope="module")
def mapped(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("map") / "m.cfm"
    model = GAPModel.load(_save(trained, tmp_path_factory.mktemp("exact") / "e.cfm"))
    report = map_model(model, MapGrid(r_spacing=0.04, cos_spacing=0.04), check_frames=[_alloy(50)])
    model.save(path)
    return model, path, report


def _save(model, path):
    model.save(path)
    return path


def test_spline_axes_evaluate_as_scipy_inside_and_beyond_the_knots():
    rng = np.random.default_rng(3)
    x = np.linspace(1.0, 4.0, 13)
    t = np.r_[[x[0]] * 4, x[2:-2], [x[-1]] * 4]  # scipy's not-a-knot layout
    tc = np.r_[[-1.0] * 4, np.linspace(-1, 1, 9)[2:-2], [1.0] * 4]
    n, nc = len(t) - 4, len(tc) - 4
    points = np.column_stack([rng.uniform(0.7, 4.3, 200), rng.uniform(0.7, 4.3, 200), rng.uniform(-1, 1, 200)])
    exact = _kernels.NBodyTerm(1, 3, 4.0, 1.0, 0.6, 1.0, np.ones((1, 3)), np.array([0, 1]), np.ones(1))
    c3 = rng.normal(size=(1, n, n, nc))
    f, g = _kernels.MappedNBodyTerm(exact, t, c3, tc).values(0, points)
    ref = NdBSpline((t, t, tc), c3[0], 3, extrapolate=True)
    np.testing.assert_allclose(f, ref(points), atol=1e-11)
    for d in range(3):
        nu = np.zeros(3, dtype=int)
        nu[d] = 1
        np.testing.assert_allclose(g[:, d], ref(points, nu=nu), atol=1e-9)
    exact2 = _kernels.NBodyTerm(1, 2, 4.0, 1.0, 0.6, 1.0, np.ones((1, 1)), np.array([0, 1]), np.ones(1))
    c1 = rng.normal(size=(1, n))
    f, g = _kernels.MappedNBodyTerm(exact2, t, c1).values(0, points[:, :1])
    spline = BSpline(t, c1[0], 3, extrapolate=True)
    np.testing.assert_allclose(f, spline(points[:, 0]), atol=1e-12)
    np.testing.assert_allclose(g[:, 0], spline.derivative()(points[:, 0]), atol=1e-10)


def test_profiles_are_the_exact_terms_centre_energies(trained):
    two, three = (k.predictor_term(a) for k, a in zip(trained.kernels_, trained.alpha_))
    one = _kernels.GapModel(3, np.zeros(3), [two])
    # 2b, well inside the cutoff (weight 1): a centre's energy is half its pair's function.
    for a, b in [(0, 0), (0, 2), (1, 2)]:
        channel = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)].index((a, b))
        e, _ = one.centre_energy(a, np.array([[0.0, 0.0, 2.7]]), np.array([b]))
        assert _kernels.mapped_profile(two, channel, np.array([[2.7]]))[0] == pytest.approx(2 * e, abs=1e-13)
    # 3b, both legs inside the cutoff: the centre's energy is the triangle's function, whichever
    # species order the neighbours come in.
    one = _kernels.GapModel(3, np.zeros(3), [three])
    r1, r2, cos = 2.6, 2.9, -0.3
    rel = np.array([[r1, 0.0, 0.0], [r2 * cos, r2 * np.sqrt(1 - cos**2), 0.0]])
    for centre, (a, b) in [(0, (0, 0)), (1, (0, 2)), (2, (1, 2)), (2, (2, 1))]:
        e, _ = one.centre_energy(centre, rel, np.array([a, b]))
        lo, hi = sorted((a, b))
        x = np.array([[r1, r2, cos]]) if a <= b else np.array([[r2, r1, cos]])
        channel = centre * 6 + [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)].index((lo, hi))
        assert _kernels.mapped_profile(three, channel, x)[0] == pytest.approx(e, abs=1e-13)


def test_mapped_model_is_close_to_the_exact_one_and_says_how_close(trained, mapped):
    model, _, report = mapped
    atoms = _alloy(77, shells=3)
    exact, fast = trained.predict(atoms), model.predict(atoms)
    df = np.abs(fast["forces"] - exact["forces"])
    assert 0 < df.max() < 2e-3
    assert abs(fast["energy"] - exact["energy"]) / len(atoms) < 1e-4
    assert {t["kind"] for t in report["terms"]} == {"2b", "3b"}
    assert all(0 < t["table_rms_error_eV"] < 1e-3 for t in report["terms"])
    assert 0 < report["check"]["force_rms_eV_per_A"] < 1e-3
    # finer tables, smaller error: the error is the tables', not a different function
    finer = map_model(GAPModel.load(mapped[1]), MapGrid(r_spacing=0.02, cos_spacing=0.02), check_frames=[_alloy(50)])
    assert finer["check"]["force_rms_eV_per_A"] < report["check"]["force_rms_eV_per_A"] / 4


def test_mapped_forces_are_minus_energy_gradient(mapped):
    model = mapped[0]
    atoms = _alloy(5)
    forces = model.predict(atoms)["forces"]
    h = 1e-5
    for a, x in [(0, 0), (3, 1), (9, 2), (12, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, x] += h
        minus.positions[a, x] -= h
        fd = -(model.predict(plus)["energy"] - model.predict(minus)["energy"]) / (2 * h)
        assert forces[a, x] == pytest.approx(fd, abs=1e-7)


def test_mapped_energy_is_continuous_across_the_cutoffs(mapped):
    model = mapped[0]

    def predict(positions):
        return model.predict(Atoms(f"Cu{len(positions)}", positions=positions))

    h = 1e-7
    for place in (lambda r: [[0, 0, 0], [0, 0, r]], lambda r: [[0, 0, 0], [2.5, 0, 0], [0, 0, r]]):
        for rc in (R2, R3):
            inside, outside = predict(place(rc - h / 2)), predict(place(rc + h / 2))
            work = np.abs(inside["forces"]).max() * h * 2  # what the force explains over the step
            assert abs(outside["energy"] - inside["energy"]) - work < 1e-8


def test_file_round_trip_and_the_cpp_reader_agree(mapped, tmp_path):
    model, path, _ = mapped
    atoms = _alloy(8, shells=3)
    ref = model.predict(atoms)
    again = GAPModel.load(path).predict(atoms)
    cpp = _kernels.GapModel.read(str(path)).compute(atoms.positions, np.searchsorted([29, 47, 79], atoms.numbers))
    np.testing.assert_allclose(again["forces"], ref["forces"], atol=1e-12)
    np.testing.assert_allclose(cpp["forces"], ref["forces"], atol=1e-12)
    # uncertainties are the unmapped model's: the tables change the energy only
    var = model.predict(atoms, properties=["uncertainty"])["uncertainty"]
    assert np.all(np.isfinite(var)) and var.max() > 0


def test_refitting_drops_the_tables(caplog):
    frames = []
    for seed in (21, 22):
        atoms = _alloy(seed)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        frames.append(atoms)
    model = GAPModel(terms=[TwoBody(r_cut=R2, n_sparse=5)], progress=False).fit(frames[:1])
    map_model(model, MapGrid(r_spacing=0.25))
    model.partial_fit(frames[1:])
    assert model.maps_ == {} and "dropped" in caplog.text


def test_cli_writes_a_mapped_file_and_reports_the_error(trained, tmp_path, capsys):
    src, out, report = tmp_path / "m.cfm", tmp_path / "fast.cfm", tmp_path / "map.json"
    trained.save(src)
    data = tmp_path / "check.extxyz"
    atoms = _alloy(31)
    atoms.calc = EMT()
    atoms.get_potential_energy()
    atoms.write(data)
    assert main(["map", str(src), "-o", str(out), "--check", str(data), "--json", str(report)]) == 0
    assert "mapped - unmapped" in capsys.readouterr().out
    assert json.loads(report.read_text())["check"]["frames"] == 1
    assert GAPModel.load(out).maps_.keys() == {0, 1}
    assert main(["map", str(src), "-o", str(out), "--r-min", "9"]) == 1
    assert "r_min must be in" in capsys.readouterr().err


def test_tabulate_covers_every_channel(trained):
    tables = tabulate(trained.kernels_[1].predictor_term(trained.alpha_[1]), 3, 3, MapGrid(r_min=1.0, r_spacing=0.25, cos_spacing=0.25))
    assert tables["coefficients"].shape[0] == 3 * 6
    assert tables["coefficients"].shape[1:3] == (len(tables["knots_r"]) - 4,) * 2
