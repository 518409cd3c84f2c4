"""The README's "Using it" block is runnable top to bottom: every ``clusterforce`` line parses with the
command line it names, and every file a line reads is one an earlier line writes (or shipped data).

Running the lines themselves takes GFN1-xTB data generation and training (minutes to hours); the
session that changes them runs them once and says so in its note.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from clusterforce.cli import build_parser, prepare

README = Path(__file__).resolve().parents[1] / "README.md"
#: Flags whose value is a file or directory a command writes.
WRITES = {"-o", "--output", "--final", "--db", "--json", "--plots", "--metrics-json", ">"}
FILE_LIKE = re.compile(r"\.(cfm|extxyz|xyz|traj|db|json|yaml|yml)$")


def _using_it_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Using it") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```", section.index("```bash") + 7)]
    lines = [line.split(" #", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_every_line_parses_and_reads_only_what_an_earlier_line_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    written: set[str] = set()
    lines = _using_it_lines()
    assert sum(line.startswith("clusterforce ") for line in lines) >= 15
    for line in lines:
        tokens = shlex.split(line)
        outputs = {tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t in WRITES}
        reads = [t for t in tokens[1:] if FILE_LIKE.search(t) and t not in outputs and not t.startswith("-")]
        missing = [t for t in reads if t not in written]
        assert not missing, f"README line reads {missing}, which no earlier line writes: {line}"
        if tokens[0] == "echo":
            Path(tokens[-1]).write_text(line.split("echo", 1)[1].split(">")[0].strip().strip('"') + "\n")
        else:
            assert tokens[0] == "clusterforce", line
            parser, commands = build_parser()
            argv = tokens[1:]
            prepare(commands[argv[0]], argv[1:])
            if "--help" in argv:
                with pytest.raises(SystemExit) as stop:
                    parser.parse_args(argv)
                assert stop.value.code == 0, line
            else:
                parser.parse_args(argv)  # exits 2 (SystemExit) on an unknown flag or a bad value
        written |= outputs
