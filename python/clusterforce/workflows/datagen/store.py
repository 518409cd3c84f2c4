"""Append-only extxyz output with an atomic checkpoint beside it, so runs survive ``kill -9``.

Each recorded frame is appended and fsync'ed before the checkpoint that counts it is written
(to a temporary file, fsync'ed, then renamed over the old one). After a crash the output may
hold bytes past the checkpoint's offset (a frame written but not yet checkpointed, or half a
frame); resuming truncates them and recomputes that frame deterministically.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.io import write

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "clusterforce-datagen-checkpoint"
CHECKPOINT_VERSION = 1


def checkpoint_path(output: Path) -> Path:
    """Checkpoint file of ``output``: ``<output>.ckpt.json`` beside it."""
    return output.with_name(output.name + ".ckpt.json")


class FrameStore:
    """Output file plus checkpoint of one datagen run.

    Parameters
    ----------
    output : Path
        extxyz file the frames are appended to.
    config : dict
        JSON-serialisable description of the run; a checkpoint is only resumed by a run with
        the same description.
    """

    def __init__(self, output: Path, config: dict[str, Any]) -> None:
        self.output = Path(output)
        self.checkpoint = checkpoint_path(self.output)
        self.config = json.loads(json.dumps(config))
        self.offset = 0
        self.frames = 0

    def open(self, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
        """Prepare the output; return the saved run state when resuming, else None.

        Raises
        ------
        FileExistsError
            If the output exists and neither ``resume`` nor ``overwrite`` is set.
        ValueError
            If the checkpoint belongs to a different run or the output was shortened.
        """
        if resume and self.checkpoint.exists():
            return self._load()
        if self.output.exists() and self.output.stat().st_size > 0 and not overwrite:
            if resume:
                raise FileExistsError(
                    f"cannot resume: {self.output} exists but its checkpoint {self.checkpoint} does not; pass --overwrite to start over"
                )
            raise FileExistsError(f"{self.output} exists; pass --resume to continue an interrupted run or --overwrite to start over")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_bytes(b"")
        self.checkpoint.unlink(missing_ok=True)
        return None

    def _load(self) -> dict[str, Any]:
        try:
            state = json.loads(self.checkpoint.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"checkpoint {self.checkpoint} is unreadable ({exc}); pass --overwrite to start over") from None
        if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(
                f"{self.checkpoint} is not a version-{CHECKPOINT_VERSION} datagen checkpoint "
                f"(format {state.get('format')!r}, version {state.get('version')!r})"
            )
        saved = state["config"]
        if saved != self.config:
            keys = sorted(k for k in set(saved) | set(self.config) if saved.get(k) != self.config.get(k))
            raise ValueError(
                f"checkpoint {self.checkpoint} was written by a run with other settings (differs in: "
                f"{', '.join(keys)}); resume with the original options or pass --overwrite to start over"
            )
        size = self.output.stat().st_size if self.output.exists() else -1
        if size < state["offset"]:
            raise ValueError(
                f"{self.output} has {max(size, 0)} bytes but its checkpoint counts {state['offset']}: the file was "
                "shortened or replaced; pass --overwrite to start over"
            )
        if size > state["offset"]:
            logger.info("dropping %d bytes written after the last checkpoint of %s", size - state["offset"], self.output)
            os.truncate(self.output, state["offset"])
        self.offset = state["offset"]
        self.frames = state["frames"]
        return state

    def append(self, frame: Atoms) -> None:
        """Append ``frame`` as extxyz and force it to disk."""
        text = io.StringIO()
        write(text, frame, format="extxyz")
        data = text.getvalue().encode()
        with open(self.output, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self.offset += len(data)
        self.frames += 1

    def save(self, state: dict[str, Any]) -> None:
        """Atomically replace the checkpoint with ``state`` plus the output offset and config."""
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": self.config,
            "offset": self.offset,
            "frames": self.frames,
            **state,
        }
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.checkpoint)
        directory = os.open(self.checkpoint.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
