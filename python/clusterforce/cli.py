"""Command-line interface: ``clusterforce <subcommand> ...``.

Each subcommand is a module in :mod:`clusterforce.commands` with ``add_parser(subparsers)``
and ``run(args) -> int``; a YAML ``--config`` may give defaults for a subcommand's flags
(keys equal the flag names), and flags given on the command line override it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ._version import __version__

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "datagen",
    "train",
    "evaluate",
    "optimize",
    "learn",
    "search",
    "screen",
    "md",
    "heat_capacity",
    "map",
    "info",
    "lammps_check",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clusterforce",
        description="Machine-learned force fields for nanoclusters: make reference data, "
        "train, evaluate, optimise, and run in ASE or LAMMPS.",
    )
    parser.add_argument("--version", action="version", version=f"clusterforce {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f".commands.{name}", __package__)
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def parse_assignments(values: Any, *, usage: str) -> dict[str, float] | None:
    """``NAME=NUMBER`` items of a flag (or the YAML mapping that replaced them) as a dict.

    ``usage`` starts the error for a malformed item, e.g. ``"--e0 expects ELEMENT=EV items such as Na=-0.21"``.
    """
    if not values:
        return None
    if isinstance(values, dict):
        return {str(k): float(v) for k, v in values.items()}
    out = {}
    for item in values:
        name, sep, value = str(item).partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise ValueError(f"{usage}, got '{item}'")
    return out


def add_parameter_flags(
    group: argparse._ArgumentGroup,
    defaults: Mapping[str, Any],
    help: Mapping[str, str],
    *,
    suffix: str = "",
    choices: Mapping[str, Sequence[Any]] | None = None,
    unset: str | None = None,
) -> None:
    """One flag per estimator parameter: ``--NAME[-SUFFIX]`` with the default's type.

    Parameters
    ----------
    group
        Argument group of the kind (``clusterforce train --help`` lists it under the kind).
    defaults
        Parameter name -> default value (an int, float, str or bool); the flag's type follows it.
    help
        Parameter name -> help text (units included); the default is appended.
    suffix
        Appended to the flag (``--r-cut-2b``) and to the destination (``r_cut_2b``), to keep
        apart parameters of the same name in different terms.
    choices
        Parameter name -> allowed values, where they are limited.
    unset
        If given, flags default to None (the caller fills them in) and the help says
        ``(default: UNSET)`` instead of the value, which then only sets the type.
    """
    for name, default in defaults.items():
        tail = f"-{suffix}" if suffix else ""
        group.add_argument(
            f"--{name.replace('_', '-')}{tail}",
            dest=parameter_dest(name, suffix),
            type=type(default),
            default=None if unset else default,
            choices=(choices or {}).get(name),
            help=f"{help[name]} (default: {unset or default})",
        )


def parameter_dest(name: str, suffix: str = "") -> str:
    """Attribute of the parsed arguments that holds parameter ``name`` (see :func:`add_parameter_flags`)."""
    return f"{name}_{suffix}" if suffix else name


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Fill flags not given on the command line from ``args.config`` (YAML, keys = flag names)."""
    path = getattr(args, "config", None)
    if not path:
        return
    import yaml

    try:
        with open(path) as fh:
            values = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise SystemExit(f"clusterforce: cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SystemExit(f"clusterforce: config file {path} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise SystemExit(f"clusterforce: config file {path} must be a mapping of flag names to values")
    given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in argv if a.startswith("--")}
    for key, value in values.items():
        attr = key.replace("-", "_")
        if not hasattr(args, attr):
            raise SystemExit(f"clusterforce: config file {path}: unknown key '{key}' for '{args.command}'")
        if attr not in given:
            setattr(args, attr, value)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_config(parser, args, argv)
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
