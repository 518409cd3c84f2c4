"""Trainable models (scikit-learn style) and the loader for model files of every kind."""

from __future__ import annotations

import os
from typing import Any

from .. import modelfile
from .dml import DMLModel
from .emlm import EMLM
from .gap import GAPModel
from .mlm import MLM
from .oamlm import OAMLM

#: Model kind -> class with ``from_modelfile(ModelFile)``; a new kind adds one entry.
MODEL_KINDS: dict[str, Any] = {"dml": DMLModel, "gap": GAPModel}


def load_model(path: str | os.PathLike) -> Any:
    """Load a trained model of any kind from a ``.cfm`` file.

    Raises
    ------
    ModelFileError
        Unreadable, truncated or inconsistent file, or a kind this version cannot load.
    """
    mf = modelfile.load(path)
    if mf.kind not in MODEL_KINDS:
        raise modelfile.ModelFileError(
            f"{mf.path}: model kind '{mf.kind}' is not known to this clusterforce (known: {', '.join(MODEL_KINDS)})"
        )
    return MODEL_KINDS[mf.kind].from_modelfile(mf)


__all__ = ["DMLModel", "EMLM", "GAPModel", "MLM", "MODEL_KINDS", "OAMLM", "load_model"]
