"""The repository follows its own ruff and clang-format configurations (pyproject.toml, .clang-format)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install '.[test]' brings it)")
    return path


def test_ruff_check_and_format():
    ruff = _tool("ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_clang_format():
    clang_format = _tool("clang-format")
    sources = sorted(str(p) for d in ("cpp", "lammps_plugin") for p in (ROOT / d).rglob("*") if p.suffix in (".hpp", ".cpp", ".h"))
    done = subprocess.run([clang_format, "--dry-run", "-Werror", *sources], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[:3000]
