"""Command-line interface: ``clusterforce <subcommand> ...``.

Each subcommand is a module in :mod:`clusterforce.cli.commands` with ``add_parser(subparsers)``
and ``run(args) -> int``. Before parsing, :func:`prepare` gives a command that trains the
flags of the chosen ``--kind`` only, and makes its YAML ``--config`` file (keys equal the flag
names) the defaults, so flags given on the command line override it. A command with
``--config`` logs its resolved flags, the package version and the git commit once.
The flag helpers live in :mod:`clusterforce.core.options` and :mod:`clusterforce.core.registry`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence

from clusterforce._version import __version__
from clusterforce.core import registry
from clusterforce.core.options import apply_config, read_config, run_record

logger = logging.getLogger(__name__)

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


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``clusterforce`` parser, and its command parsers by name."""
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
    return parser, sub.choices


def prepare(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Ready one command's parser for its arguments ``argv``: add the chosen kind's flags (a parser
    made with :func:`registry.add_kind_argument`) and make the ``--config`` file's values its defaults."""
    # --kind and --config are read ahead of the parse: the flags the parser takes depend on them.
    ahead = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    ahead.add_argument("--kind")
    ahead.add_argument("--config")
    ahead.add_argument("-h", "--help", action="store_true")
    try:
        early, _ = ahead.parse_known_args(argv)
    except argparse.ArgumentError:  # e.g. --config without a file: the real parse says so
        return
    takes_config = any("--config" in a.option_strings for a in parser._actions)
    try:
        config = read_config(early.config) if takes_config and early.config else {}
    except ValueError as exc:
        parser.error(str(exc))
    kind = None
    if registry.kind_choices(parser):
        kind = early.kind or config.get("kind") or (None if early.help else parser.get_default("kind"))
        if kind in registry.kind_choices(parser):
            registry.add_chosen_kind_arguments(parser, kind, argv)
    if config and not early.help:  # --help shows the options, whatever a file would set
        apply_config(parser, early.config, config, stray=(lambda flag: registry.stray_option(flag, kind)) if kind else None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parser()
    # Only --help and --version come before the command name.
    at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if at is not None and argv[at] in commands:
        prepare(commands[argv[at]], argv[at + 1 :])
    args = parser.parse_args(argv)
    logging.basicConfig(
        # Under MPI only rank 0 logs information; every rank still reports warnings and errors.
        level=logging.WARNING if getattr(args, "quiet", False) or _mpi_rank() > 0 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if hasattr(args, "config"):  # the commands that fit a model (and datagen): record what they run with, once
        logger.info("clusterforce %s: %s", args.command, json.dumps(run_record(args), default=str))
    return int(args._run(args) or 0)


def _mpi_rank() -> int:
    """This process's rank when started by an MPI launcher (without importing MPI), else 0."""
    return int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))


if __name__ == "__main__":
    sys.exit(main())
