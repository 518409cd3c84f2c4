import numpy as np
import pytest
from ase.io import read
from clusterforce.cli import main


def test_unknown_builder_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["datagen", "--system", "cu", "-o", "x.extxyz"])
    err = capsys.readouterr().err
    assert "invalid choice: 'cu'" in err and "'ring', 'na', 'ga', 'agau'" in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--system", "ring", "--n", "4"], "give the output file with -o/--output"),
        (["--system", "ring", "--start", "a.xyz", "-o", "o.extxyz"], "give exactly one of --system"),
        (["-o", "o.extxyz"], "give exactly one of --system"),
        (["--system", "na", "--n", "20", "-o", "o.extxyz"], "no icosahedron has 20 atoms"),
        (["--system", "agau", "--n", "13", "--index", "0", "-o", "o.extxyz"], "--index selects frames of --start"),
        (["--system", "agau", "--n", "13", "--reference", "emt", "--frames", "0", "-o", "o.extxyz"], "--frames must be"),
    ],
)
def test_invalid_requests_fail_with_a_message(tmp_path, monkeypatch, caplog, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(["datagen", *argv]) == 1
    assert message in caplog.text


def test_emt_run_from_yaml_config_and_start_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text(
        "system: agau\nn: [13]\nreference: emt\ntemperatures: [300, 500]\nsteps-per-temperature: 10\nframes: 4\n"
    )
    assert main(["datagen", "--config", "run.yaml", "--fraction-au", "0.25", "-o", "agau.extxyz", "--quiet"]) == 0
    assert "datagen: 4 frames in agau.extxyz (Ag10Au3: 4); scf retries 0" in capsys.readouterr().out
    frames = read("agau.extxyz", ":")
    assert [f.info["step"] for f in frames][-1] == 20
    assert frames[0].get_chemical_symbols().count("Au") == 3

    argv = ["datagen", "--start", "agau.extxyz", "--index", "-1", "--reference", "emt", "--temperatures", "400",
            "--steps-per-temperature", "5", "--frames", "2", "-o", "again.extxyz", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    again = read("again.extxyz", ":")
    assert again[0].info["source"] == "agau.extxyz@3"
    assert np.allclose(again[0].get_center_of_mass(), 0.0, atol=0.5)


def test_gfn1_ring_frames_read_back_with_energies_and_forces(tmp_path, monkeypatch):
    pytest.importorskip("tblite")
    monkeypatch.chdir(tmp_path)
    argv = ["datagen", "--system", "ring", "--n", "4", "--reference", "gfn1-xtb", "--temperatures", "300", "900",
            "--steps-per-temperature", "4", "--frames", "3", "-o", "ring.extxyz", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    frames = read("ring.extxyz", ":")
    assert [f.info["step"] for f in frames] == [1, 6, 8]
    for frame in frames:
        assert frame.info["method"] == "gfn1-xtb" and frame.info["electronic_temperature_K"] == 300.0
        assert frame.info["system"] == "ring4" and frame.get_chemical_formula(mode="metal") == "Au4C4H12S4"
        assert -1300 < frame.get_potential_energy() < -1200  # GFN1-xTB total energy of [Au(SCH3)]4, eV
        forces = frame.get_forces()
        assert forces.shape == (24, 3) and 0.1 < np.abs(forces).max() < 20
        assert np.allclose(forces.sum(axis=0), 0.0, atol=1e-3)
