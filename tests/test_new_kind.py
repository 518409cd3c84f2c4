"""A kind built as docs/adding-a-kind.md says runs in Python, ASE and LAMMPS with the structure driver
and the pair style as they are.

The test kind is tests/new_kind: ``morse.hpp`` (its C++ LocalModel and registrar) and the
``morse_kind`` package (estimator and registry record). Once per session the extension and the
LAMMPS plugin are built with ``-DCLUSTERFORCE_EXTRA_KINDS=tests/new_kind/morse.hpp`` into a
temporary directory (cmake on the repository root as the package build runs it: ninja, only the
two targets, -O2 without LTO to save time); a copy of the clusterforce package with them, the
``morse_kind`` package and its ``clusterforce.kinds`` entry point go first on PYTHONPATH of a
fresh process that runs ``tests/new_kind/run_kit.py``: the whole conformance kit and
``clusterforce train --kind morse``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import clusterforce
import pytest
from clusterforce import testing
from clusterforce.core import registry

ROOT = Path(__file__).resolve().parents[1]
NEW_KIND = Path(__file__).resolve().parent / "new_kind"


def _tool(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def _missing_build_tools() -> str | None:
    """Why the extension cannot be built here (None when it can)."""
    for name in ("cmake", "ninja"):
        if _tool(name) is None:
            return f"no {name} next to this Python or on PATH"
    if not (os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")):
        return "no C++ compiler (c++, g++ or $CXX)"
    try:
        import pybind11  # noqa: F401
    except ImportError:
        return "pybind11 is not installed"
    return None


def _run(command: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f"{what} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="session")
def extra_kind_site(tmp_path_factory) -> Path:
    """A directory holding clusterforce built with the test kind, morse_kind and its entry point."""
    why = _missing_build_tools()
    if why:
        pytest.skip(f"cannot build the extension with an extra kind: {why}")
    import pybind11

    base = tmp_path_factory.mktemp("extra_kind")
    build = base / "build"
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    _run(
        [
            _tool("cmake"), "-S", ROOT, "-B", build, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={_tool('ninja')}",
            "-DCMAKE_BUILD_TYPE=Release", f"-DSKBUILD_PROJECT_VERSION={clusterforce.__version__}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCLUSTERFORCE_EXTRA_KINDS={NEW_KIND / 'morse.hpp'}", "-DCLUSTERFORCE_OPTIMIZE=-O2",
            "-DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF",
        ],
        "cmake configure",
        env=env,
    )  # fmt: skip
    record = json.loads((build / "lammps_plugin" / "build.json").read_text())
    if not record.get("plugin"):
        pytest.skip(f"no LAMMPS headers to build the plugin against: {record.get('reason')}")
    jobs = str(os.cpu_count() or 2)
    _run([_tool("cmake"), "--build", build, "--target", "_kernels", "clusterforceplugin", "-j", jobs], "cmake --build", env=env)

    site = base / "site"
    package = site / "clusterforce"
    shutil.copytree(Path(clusterforce.__file__).parent, package, ignore=shutil.ignore_patterns("*.so", "__pycache__", "build.json"))
    for built in build.glob("_kernels*.so"):
        shutil.copy2(built, package)
    for name in ("clusterforceplugin.so", "build.json"):
        shutil.copy2(build / "lammps_plugin" / name, package / "lammps")
    shutil.copytree(NEW_KIND / "morse_kind", site / "morse_kind", ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "morse_kind-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: morse-kind\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nmorse = morse_kind.kind\n")
    return site


def test_the_test_kind_passes_the_kit_in_python_ase_and_lammps(extra_kind_site, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(extra_kind_site), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}
    # The plugin of this process's clusterforce must not load beside the one built with the kind.
    env.pop("LAMMPS_PLUGIN_PATH", None)
    out = _run([sys.executable, NEW_KIND / "run_kit.py", tmp_path / "work"], "run_kit.py", env=env, timeout=900)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(report["checks"]) == list(testing.CHECKS)
    assert report["cli"] == "ok"
    # A real fit, not a fitted constant: the largest force error on held-out Cu-Ag clusters was 0.60 eV/A
    # (a pair potential against EMT's many-body forces); a broken design matrix gives several eV/A.
    assert report["max_force_error_held_out"] < 1.0, report


def test_a_kind_is_registered_without_editing_the_registry(monkeypatch):
    monkeypatch.setattr(registry, "KINDS", dict(registry.KINDS))
    registry.register("morse", "morse_kind.kind")
    registry.register("morse", "morse_kind.kind")  # again, same module: nothing happens
    assert registry.KINDS["morse"] == "morse_kind.kind"
    with pytest.raises(ValueError, match="model kind 'gap' is already registered"):
        registry.register("gap", "morse_kind.kind")
