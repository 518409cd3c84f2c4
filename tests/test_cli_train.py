import json
import re

import pytest
from _frames import emt_frames, ring_frames
from ase.io import write
from clusterforce.cli import main
from clusterforce.core import registry

SMALL = ["--kind", "dml", "--n-max", "3", "--l-max", "2", "--n-references-norm", "30", "--n-references-direction", "20", "--quiet"]


@pytest.fixture()
def data(tmp_path):
    train, test = tmp_path / "train.extxyz", tmp_path / "test.extxyz"
    write(train, emt_frames(4, seed=0))
    write(test, emt_frames(2, seed=1))
    return train, test


def test_train_then_evaluate_writes_json_schema_and_plots(tmp_path, data, capsys):
    train, test = data
    model = tmp_path / "au.cfm"
    assert main(["train", "--kind", "dml", str(train), "-o", str(model), *SMALL]) == 0
    out_json = tmp_path / "metrics.json"
    plots = tmp_path / "plots"
    assert main(["evaluate", str(model), str(test), "--json", str(out_json), "--plots", str(plots), "--quiet"]) == 0
    assert "| Au | 26 |" in capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert set(report) == {"kind", "classes", "force_rmse", "n_frames"}
    assert report["kind"] == "dml" and report["n_frames"] == 2
    assert set(report["classes"]) == {"Au"}
    assert set(report["classes"]["Au"]) == {"n", "norm_rmse", "weighted_angle_deg", "mean_angle_deg"}
    assert report["classes"]["Au"]["n"] == 26 and report["force_rmse"] > 0
    assert (plots / "norms.png").stat().st_size > 0 and (plots / "angles.png").stat().st_size > 0


def test_bad_input_gives_one_clear_line(tmp_path, data, capsys):
    train, test = data
    no_forces = tmp_path / "noforces.xyz"
    write(no_forces, [a.copy() for a in emt_frames(2)])
    assert main(["train", str(no_forces), "-o", str(tmp_path / "m.cfm"), *SMALL]) == 1
    err = capsys.readouterr().err
    assert "noforces.xyz" in err and "frame 0" in err and "no forces" in err
    model = tmp_path / "au.cfm"
    assert main(["train", str(train), "-o", str(model), *SMALL]) == 0
    cut = tmp_path / "cut.cfm"
    cut.write_bytes(model.read_bytes()[:100])
    assert main(["evaluate", str(cut), str(test), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("clusterforce evaluate: error:") and "cut.cfm" in err and "truncated" in err
    assert len(err.splitlines()) == 1
    rings = tmp_path / "rings.extxyz"
    write(rings, ring_frames(4, 1))
    assert main(["evaluate", str(model), str(rings), "--quiet"]) == 1
    assert "rings.extxyz, frame 0: atom 1 is S" in capsys.readouterr().err
    assert main(["train", str(train), *SMALL]) == 2
    assert "give -o MODEL.cfm" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--kind", "nonsense", str(train), "-o", str(model)])


def test_gap_train_then_evaluate_through_the_cli(tmp_path, data, capsys):
    train, test = data
    model = tmp_path / "au_gap.cfm"
    flags = ["--terms", "2b", "soap", "--n-max-soap", "3", "--l-max-soap", "2", "--n-sparse-soap", "20", "--quiet"]
    assert main(["train", "--kind", "gap", str(train), "-o", str(model), *flags]) == 0
    out_json = tmp_path / "gap.json"
    assert main(["evaluate", str(model), str(test), "--json", str(out_json), "--plots", str(tmp_path / "p"), "--quiet"]) == 0
    assert "| force_rmse |" in capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert set(report) == {"kind", "energy_rmse_mev_per_atom", "energy_mae_mev_per_atom", "force_rmse", "force_mae", "n_frames"}
    assert report["kind"] == "gap" and report["n_frames"] == 2
    assert 0 < report["force_mae"] <= report["force_rmse"]
    assert (tmp_path / "p" / "force_parity.png").stat().st_size > 0


def test_optimize_cli_partwise_fix_json_and_extrapolation_stop(tmp_path, capsys):
    from ase.io import read

    train = tmp_path / "rings.extxyz"
    write(train, ring_frames(4, 4) + ring_frames(5, 4, seed=1))
    model = tmp_path / "rings.cfm"
    assert main(["train", "--kind", "dml", str(train), "-o", str(model), *SMALL]) == 0
    start = ring_frames(5, 1, seed=2)[0]
    write(tmp_path / "start.xyz", start)
    summary = tmp_path / "opt.json"
    args = ["optimize", str(model), str(tmp_path / "start.xyz"), "--steps", "6", "--fmax", "0.001", "--maxstep", "0.05",
            "--partwise", "S:2,C:1", "--fix", "H", "--reset-every", "3", "-o", str(tmp_path / "opt.traj"),
            "--json", str(summary), "--no-stop-when-extrapolating", "--quiet"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(summary.read_text())
    assert report["nsteps"] == 6 and report["parts"] == ["S", "S", "C", "S", "S", "C"] and report["resets"] == [3]
    assert report["stopped"] == "" and not report["converged"]
    path = read(tmp_path / "opt.traj", ":")
    h = start.numbers == 1
    assert len(path) == 7 and (path[-1].positions[h] == path[0].positions[h]).all()
    assert "not converged after 6 steps" in capsys.readouterr().out

    squeezed = start.copy()
    squeezed.positions = squeezed.positions.mean(axis=0) + 0.7 * (squeezed.positions - squeezed.positions.mean(axis=0))
    write(tmp_path / "squeezed.xyz", squeezed)
    assert main(["optimize", str(model), str(tmp_path / "squeezed.xyz"), "--steps", "6", "--stop-when-extrapolating",
                 "-o", str(tmp_path / "sq.traj"), "--json", str(summary), "--quiet"]) == 0  # fmt: skip
    report = json.loads(summary.read_text())
    assert report["nsteps"] == 0 and report["stopped"].startswith("step 0: atoms ")
    assert "stopped at step 0" in capsys.readouterr().out


def test_optimize_cli_hybrid_with_reference(tmp_path, data, capsys):
    from ase.calculators.emt import EMT
    from ase.io import read

    train, test = data
    model = tmp_path / "au_gap.cfm"
    flags = ["--terms", "2b", "--quiet"]
    assert main(["train", "--kind", "gap", str(train), "-o", str(model), *flags]) == 0
    start = read(test, index=0)
    start.rattle(0.1, seed=5)
    write(tmp_path / "start.xyz", start)
    summary, frames = tmp_path / "hyb.json", tmp_path / "ref.extxyz"
    assert main(["optimize", str(model), str(tmp_path / "start.xyz"), "--reference", "emt", "--steps", "30", "--fmax", "0.05",
                 "--final", str(tmp_path / "final.extxyz"), "--reference-frames", str(frames), "--json", str(summary),
                 "-o", str(tmp_path / "h.traj"), "--quiet"]) == 0  # fmt: skip
    report = json.loads(summary.read_text())
    assert report["reference_calls"] == len(report["reference_energies"]) == len(read(frames, ":"))
    assert report["final_energy"] <= report["start_energy"]
    final = read(tmp_path / "final.extxyz")
    final.calc = EMT()
    assert final.get_potential_energy() == pytest.approx(report["final_energy"], abs=1e-6)  # extxyz rounding
    assert "emt calls" in capsys.readouterr().out


def test_train_with_validation_split_by_group(tmp_path, capsys):
    from clusterforce.core import modelfile

    frames = emt_frames(3, seed=0) + emt_frames(3, seed=1)
    for i, atoms in enumerate(frames):
        atoms.info["trajectory"] = f"md{i // 3}"
    data = tmp_path / "train.extxyz"
    write(data, frames)
    model, metrics = tmp_path / "v.cfm", tmp_path / "v.json"
    flags = ["--kind", "gap", "--terms", "2b", "--quiet", "--valid-fraction", "0.3", "--group-by", "trajectory"]
    assert main(["train", str(data), "-o", str(model), "--metrics-json", str(metrics), *flags]) == 0
    report = json.loads(metrics.read_text())
    assert report["split"]["n_train"] == 3 and report["split"]["n_valid"] == 3
    assert report["validation"]["force_rmse"] > 0 and report["train"]["force_rmse"] > 0
    assert modelfile.load(model).metadata["training"]["validation"]["split"]["group_by"] == "trajectory"
    out = capsys.readouterr().out
    assert "validation split (3 frames, groups by trajectory)" in out
    assert (
        main(
            [
                "train",
                str(data),
                "-o",
                str(model),
                "--kind",
                "gap",
                "--terms",
                "2b",
                "--quiet",
                "--valid-fraction",
                "0.3",
                "--group-by",
                "nokey",
            ]
        )
        == 1
    )
    assert "frame 0 has no info['nokey']" in capsys.readouterr().err


def _help(capsys, monkeypatch, *argv: str) -> str:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal width
    with pytest.raises(SystemExit) as done:
        main(["train", *argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def _lists(text: str, flag: str) -> bool:
    """Whether ``flag`` appears as a whole option (``--r-cut`` is not inside ``--r-cut-2b``)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


@pytest.mark.parametrize("kind", list(registry.KINDS))
def test_help_of_a_kind_lists_its_options_and_no_other_kinds(kind, capsys, monkeypatch):
    text = _help(capsys, monkeypatch, "--kind", kind)
    own = registry.kind_options(kind)
    others = {flag for name in registry.KINDS for flag in registry.kind_options(name)} - own
    assert own and all(_lists(text, flag) for flag in own)
    assert not [flag for flag in others if _lists(text, flag)]
    assert all(_lists(text, flag) for flag in ("--kind", "-o", "--config", "--valid-fraction", "--seed"))
    assert len(text.splitlines()) < 80


def test_help_without_a_kind_lists_the_kinds(capsys, monkeypatch):
    text = _help(capsys, monkeypatch)
    assert "Add --kind K --help" in text
    assert all(f"{name}: {registry.get(name).SUMMARY.split()[0]}" in text for name in registry.KINDS)
    assert not [flag for name in registry.KINDS for flag in registry.kind_options(name) if _lists(text, flag)]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--kind", "dart", "--r-cut", "5"], "--r-cut is an option of kinds dml and sann, not dart"),
        (["--kind", "gap", "--hidden", "6", "6"], "--hidden is an option of kind sann, not gap"),
        (["--kind", "sann", "--sigma=0.3"], "--sigma is an option of kind dml, not sann"),
        (["--kind", "dart", "--no-baseline"], "--no-baseline is an option of kinds dml, gap and sann, not dart"),
        (["--n-references-norm", "5"], "--n-references-norm is an option of kind dml, not gap"),  # the default kind, gap
        (["--kind", "gap", "--r-cut-2", "5"], "unknown option --r-cut-2 ('--kind gap --help' lists the options)"),
    ],
)
def test_an_option_of_another_kind_is_an_error_naming_its_kind(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as done:
        main(["train", *argv, str(tmp_path / "data.extxyz"), "-o", str(tmp_path / "m.cfm")])
    assert done.value.code == 2
    assert f"clusterforce train: error: {message}" in capsys.readouterr().err
