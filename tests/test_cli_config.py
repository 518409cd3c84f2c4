"""``--config FILE`` (YAML, keys = flag names) on the commands that fit a model: train, learn, map."""

import json

import pytest
from _frames import emt_frames
from ase.io import write
from clusterforce.cli import build_parser, main, prepare
from clusterforce.core import registry

SMALL = ["--kind", "dml", "--n-max", "3", "--l-max", "2", "--n-references-norm", "30", "--quiet"]


@pytest.fixture()
def data(tmp_path):
    path = tmp_path / "train.extxyz"
    write(path, emt_frames(4, seed=0))
    return path


def _config(tmp_path, text: str, name: str = "cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _parse(command: str, *argv: str):
    """The namespace ``clusterforce COMMAND ARGV`` runs with (parsed as :func:`main` parses it)."""
    parser, commands = build_parser()
    prepare(commands[command], argv)
    return parser.parse_args([command, *argv])


def _error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    assert done.value.code == 2
    return capsys.readouterr().err


def test_train_reads_config_and_flags_override_it(tmp_path, data):
    config = _config(tmp_path, "n-references-norm: 25\nn_references_direction: 7\nsigma2: {Au: 0.4}\n")
    model = tmp_path / "au.cfm"
    assert main(["train", str(data), "-o", str(model), "--config", str(config), *SMALL[:4], "--n-references-direction", "9"]) == 0
    loaded = registry.load_model(model)
    stats = loaded.training_["classes"]["Au"]
    assert (stats["n_references_norm"], stats["n_references_direction"]) == (25, 9)
    assert loaded.models_["Au"].oamlm.sigma2 == 0.4


def test_config_values_are_converted_and_checked_like_flags(tmp_path):
    config = _config(tmp_path, "kind: sann\nr_cut: 5\nhidden: [6, 7]\nz-eff: {Au: 10.94}\noptimizer: adam\n")
    args = _parse("train", "data.extxyz", "--config", str(config), "--hidden", "4", "4")
    assert args.kind == "sann" and args.r_cut == 5.0 and isinstance(args.r_cut, float)
    assert args.hidden == [4, 4] and args.z_eff == ["Au=10.94"] and args.optimizer == "adam"
    gap = _config(tmp_path, "kind: gap\nterms: [2b]\nno-variance: true\nmap: false\nno-baseline: true\n", "gap.yaml")
    args = _parse("train", "data.extxyz", "--config", str(gap), "--map")
    assert args.terms == ["2b"] and args.no_variance and args.map and args.baseline is False
    args = _parse("train", "data.extxyz", "--config", str(gap), "--kind", "gap", "--terms", "2b", "soap")
    assert args.terms == ["2b", "soap"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("kind: dml\nn-max: 3\nfoo_bar: 1\n", "config file {path}: unknown key 'foo_bar' (no --foo-bar option)"),
        ("kind: dart\nr-cut: 5\n", "config file {path}: --r-cut is an option of kinds dml and sann, not dart"),
        ("kind: dml\nterms: [2b]\n", "config file {path}: --terms is an option of kind gap, not dml"),
        ("kind: dml\nn-max: three\n", "config file {path}, key 'n-max': argument --n-max: invalid int value: 'three'"),
        ("kind: dml\nloss: cubic\n", "config file {path}, key 'loss': argument --loss: invalid choice: 'cubic'"),
        ("kind: sann\nhidden: [6]\n", "config file {path}, key 'hidden': argument --hidden: expected 2 arguments"),
        ("kind: dml\nr-cut: [4, 5]\n", "config file {path}, key 'r-cut': --r-cut takes one value, got [4, 5]"),
        ("quiet: 1\n", "config file {path}, key 'quiet': --quiet is a switch: give true or false, not 1"),
        ("data: [a.extxyz]\n", "config file {path}: 'data' is a positional argument; give it on the command line"),
        ("- n-max\n", "config file {path} must be a mapping of flag names to values, not a list"),
    ],
)
def test_bad_train_config_is_an_error_naming_file_and_key(tmp_path, capsys, text, message):
    config = _config(tmp_path, text)
    err = _error(capsys, "train", "data.extxyz", "-o", "m.cfm", "--config", str(config))
    assert f"clusterforce train: error: {message.format(path=config)}" in err


def test_a_missing_config_file_is_named(tmp_path, capsys):
    err = _error(capsys, "train", "data.extxyz", "--config", str(tmp_path / "none.yaml"))
    assert f"cannot read config file {tmp_path / 'none.yaml'}: No such file or directory" in err


def test_train_logs_the_resolved_settings_of_the_chosen_kind_once(tmp_path, data, caplog):
    config = _config(tmp_path, "n-references-direction: 20\n")
    caplog.set_level("INFO", logger="clusterforce")
    assert main(["train", str(data), "-o", str(tmp_path / "m.cfm"), "--config", str(config), *SMALL]) == 0
    records = [r.getMessage() for r in caplog.records if r.getMessage().startswith("clusterforce train: ")]
    assert len(records) == 1
    logged = json.loads(records[0].removeprefix("clusterforce train: "))
    assert logged["version"] and "git" in logged
    assert logged["kind"] == "dml" and logged["n_references_direction"] == 20 and logged["n_max"] == 3
    assert logged["config"] == str(config)
    assert not {"terms", "epochs", "hidden", "max_epochs"} & set(logged)  # other kinds' settings


def test_learn_takes_a_config_file(tmp_path, capsys):
    init, start = tmp_path / "init.extxyz", tmp_path / "start.xyz"
    write(init, emt_frames(2, seed=0, rattle=0.05))
    write(start, emt_frames(1, seed=1)[0])
    config = _config(tmp_path, "reference: emt\nterms: [2b]\nhops: -1\n")
    argv = ["learn", "--init", str(init), "--start", str(start), "--workdir", str(tmp_path / "w"), "-o", str(tmp_path / "l.cfm")]
    assert main([*argv, "--config", str(config), "--quiet"]) == 1  # the config's (required) --reference and its --hops reached run
    assert "clusterforce learn: error: hops must be >= 0" in capsys.readouterr().err
    dml = _config(tmp_path, "kind: dml\nreference: emt\nterms: [2b]\n", "dml.yaml")
    assert "--terms is an option of kind gap, not dml" in _error(capsys, *argv, "--config", str(dml))


def test_map_takes_a_config_file(tmp_path, data, capsys):
    model = tmp_path / "gap.cfm"
    assert main(["train", "--kind", "gap", str(data), "-o", str(model), "--terms", "2b", "--no-map", "--quiet"]) == 0
    config = _config(tmp_path, "r-min: 9\n")
    assert main(["map", str(model), "-o", str(tmp_path / "fast.cfm"), "--config", str(config)]) == 1
    assert "r_min must be in" in capsys.readouterr().err
    bad = _config(tmp_path, "r-cut: 5\n", "bad.yaml")
    assert "unknown key 'r-cut'" in _error(capsys, "map", str(model), "-o", "x.cfm", "--config", str(bad))
