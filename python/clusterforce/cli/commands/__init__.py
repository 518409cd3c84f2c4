"""Subcommands of the ``clusterforce`` CLI, one module each (see :mod:`clusterforce.cli`)."""
