"""Argument building blocks shared by the commands and the kinds' flag groups.

The kinds build their ``clusterforce train`` flags with :func:`add_parameter_flags` and read
``NAME=VALUE`` items with :func:`parse_assignments`; commands that fit a model add
:func:`add_config_argument`, whose YAML file :func:`apply_config` turns into the parser's
defaults before parsing, so flags given on the command line override it. Nothing here imports
the command line (:mod:`clusterforce.cli`) or a model.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from clusterforce._version import __version__


def parse_assignments(values: Sequence[str] | None, *, usage: str) -> dict[str, float] | None:
    """``NAME=NUMBER`` items of a flag as a dict (None if the flag was not given).

    ``usage`` starts the error for a malformed item, e.g. ``"--e0 expects ELEMENT=EV items such as Na=-0.21"``.
    A YAML mapping in a config file reaches here as such items (see :func:`apply_config`).
    """
    if not values:
        return None
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
    unset: bool = False,
) -> None:
    """One flag per estimator parameter: ``--NAME[-SUFFIX]`` with the default's type.

    Parameters
    ----------
    group
        Argument group of the kind (``clusterforce train --kind K --help`` lists it).
    defaults
        Parameter name -> default value (an int, float or str); the flag's type follows it.
    help
        Parameter name -> help text (units included); the default is appended.
    suffix
        Appended to the flag (``--r-cut-2b``) and to the destination (``r_cut_2b``), to keep
        apart parameters of the same name in different terms of one kind.
    choices
        Parameter name -> allowed values, where they are limited.
    unset
        Flags default to None (the caller fills them in, e.g. from a preset the help of another
        flag describes) and the help names no default; the value then only sets the type.
    """
    for name, default in defaults.items():
        tail = f"-{suffix}" if suffix else ""
        limited = (choices or {}).get(name)
        group.add_argument(
            f"--{name.replace('_', '-')}{tail}",
            dest=parameter_dest(name, suffix),
            type=type(default),
            default=None if unset else default,
            choices=limited,
            metavar=None if limited else _METAVARS.get(type(default), "VALUE"),
            help=help[name] if unset else f"{help[name]} (default: {default})",
        )


#: Placeholder of a parameter flag's value in ``--help``, by the value's type.
_METAVARS = {int: "N", float: "X"}


def parameter_dest(name: str, suffix: str = "") -> str:
    """Attribute of the parsed arguments that holds parameter ``name`` (see :func:`add_parameter_flags`)."""
    return f"{name}_{suffix}" if suffix else name


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """``--config FILE``: a YAML mapping of flag names to values, read by :func:`apply_config`."""
    parser.add_argument(
        "--config",
        metavar="CFG.yaml",
        help="YAML file of flag values, keyed by flag name (r-cut or r_cut); flags given here override it",
    )


def read_config(path: str | Path) -> dict[str, Any]:
    """The mapping in YAML file ``path``; ValueError naming the file if it cannot be read or is not a mapping."""
    import yaml

    try:
        with open(path) as fh:
            values = yaml.safe_load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path} is not valid YAML: {exc}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must be a mapping of flag names to values, not a {type(values).__name__}")
    return values


def apply_config(
    parser: argparse.ArgumentParser,
    path: str | Path,
    values: Mapping[str, Any] | None = None,
    *,
    stray: Callable[[str], str | None] | None = None,
) -> None:
    """Make the flag values of config file ``path`` the defaults of ``parser``.

    Call it before ``parser.parse_args``: flags on the command line then override the file. A
    value is converted and checked as the flag's own would be (type, choices, number of items);
    a YAML mapping becomes ``KEY=VALUE`` items, ``true``/``false`` set a switch. Exits through
    ``parser.error`` (status 2) naming the file and the key for an unknown key or a bad value.

    Parameters
    ----------
    values
        The file's mapping if already read (:func:`read_config`), else it is read here.
    stray
        For a key the parser does not know: its flag (``--r-cut``) -> why it does not belong
        here (e.g. "--r-cut is an option of kind dml, not dart"), or None.
    """
    try:
        values = read_config(path) if values is None else values
    except ValueError as exc:
        parser.error(str(exc))
    by_option = {s: a for a in parser._actions for s in a.option_strings}
    by_dest = {a.dest: a for a in parser._actions}
    for key, value in values.items():
        flag = "--" + str(key).replace("_", "-")
        action = by_option.get(flag) or by_dest.get(str(key).replace("-", "_"))
        if action is None or action.dest in ("help", "version", "config") or action.dest.startswith("_"):
            why = stray(flag) if stray else None
            parser.error(f"config file {path}: {why or f'unknown key {key!r} (no {flag} option)'}")
        if not action.option_strings:
            parser.error(f"config file {path}: {key!r} is a positional argument; give it on the command line")
        try:
            converted = _convert(action, flag if flag in action.option_strings else action.option_strings[-1], value)
        except (argparse.ArgumentError, ValueError) as exc:
            parser.error(f"config file {path}, key {key!r}: {exc}")
        parser.set_defaults(**{action.dest: converted})
        action.required = False


def _convert(action: argparse.Action, option: str, value: Any) -> Any:
    """``value`` from a config file as ``action`` would store it had ``option`` been given on the command line."""
    if action.nargs == 0:  # a switch: store_true/store_false or --X/--no-X
        if not isinstance(value, bool):
            raise ValueError(f"{option} is a switch: give true or false, not {value!r}")
        if isinstance(action, argparse.BooleanOptionalAction):
            return value != option.startswith("--no-")
        return action.const if value else action.default
    if value is None:
        raise ValueError(f"no value for {option}")
    if isinstance(value, dict):
        items = [f"{k}={v}" for k, v in value.items()]
    else:
        items = value if isinstance(value, list) else [value]
    if action.nargs in (None, "?"):
        if len(items) != 1:
            raise ValueError(f"{option} takes one value, got {value!r}")
        argv = [f"{option}={items[0]}"]  # '=' keeps a value such as -5 from reading as an option
    else:
        argv = [option, *map(str, items)]
    # Parse the items with a parser holding only this option, so argparse converts and checks them.
    probe = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    probe._add_action(copy.copy(action))
    namespace, extra = probe.parse_known_args(argv)
    if extra:
        raise ValueError(f"{option} takes {action.nargs} values, got {value!r}")
    return getattr(namespace, action.dest)


def git_commit() -> str | None:
    """``git describe --always --dirty`` of the checkout this package runs from, None if it is not one."""
    here = Path(__file__).resolve().parent.parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10, check=False)

    try:
        # Only if the package's files are tracked there: an installed copy inside some other repository is not one.
        if git("ls-files", "--error-unmatch", "_version.py").returncode != 0:
            return None
        done = git("describe", "--always", "--dirty", "--abbrev=12")
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def run_record(args: argparse.Namespace) -> dict[str, Any]:
    """What a run log records: package version, git commit (if any) and the resolved flags of ``args``."""
    flags = {k: v for k, v in sorted(vars(args).items()) if not k.startswith("_")}
    return {"version": __version__, "git": git_commit(), **flags}
