"""The ``.cfm`` model file: one portable file per trained model.

Layout (safetensors): an 8-byte little-endian header length, a JSON header, then raw
little-endian float64 / float32 / int64 arrays. The header's ``__metadata__`` holds string values
only (a safetensors rule), so it carries ``format_version``, ``kind``, ``clusterforce_version``,
``checksum`` and ``metadata``: the JSON text of everything else (elements, classes, descriptor
parameters, hyperparameters, training-data hash, training metrics). The same file is read by
:mod:`clusterforce.core.modelfile` here and by ``cpp/include/clusterforce/modelfile.hpp`` in C++.

``checksum`` (format_version 2) is ``"crc32:"`` and eight hex digits: the CRC-32 (zlib's) of the
whole file computed with those digits written as ``00000000``, so header and payload are both
covered and a damaged copy is refused instead of predicting different numbers. Arrays a kind
stores as float32 (F32) are returned as float64. Format version 1 files (no checksum, float64
only) still load. See docs/model-file.md.

Readers reject unknown format versions, truncated files, checksum mismatches and shape mismatches
with a :class:`ModelFileError` that names the file and the field.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clusterforce._version import __version__

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
#: Versions this reader accepts: 1 (no checksum) and the current one.
READABLE_VERSIONS = (1, 2)

_DTYPES = {"F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "I64": np.dtype("<i8")}
#: The checksum field as it appears in the header bytes, followed by 8 hex digits.
_CHECKSUM_KEY = b'"checksum":"crc32:'
_CHECKSUM_PLACEHOLDER = "crc32:00000000"
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class ModelFileError(ValueError):
    """A model file that cannot be read or does not hold what its reader needs."""


def _as_storable(name: str, value: np.ndarray) -> tuple[str, np.ndarray]:
    array = np.asarray(value)
    if array.dtype == np.float32:
        return "F32", np.asarray(array, dtype="<f4", order="C")
    if array.dtype.kind == "f":
        return "F64", np.asarray(array, dtype="<f8", order="C")
    if array.dtype.kind in "iub":
        return "I64", np.asarray(array, dtype="<i8", order="C")
    raise TypeError(f"model array '{name}' has dtype {array.dtype}; only float and integer arrays can be stored")


def to_bytes(
    *,
    kind: str,
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
) -> bytes:
    """The bytes of a model file, as :func:`save` writes them.

    Parameters
    ----------
    kind
        Model kind, e.g. ``"dml"`` or ``"gap"``.
    arrays
        Named arrays; float32 arrays are stored as float32 (for arrays whose precision the
        predictions do not need), other float dtypes as float64, integer and bool dtypes as int64.
        Use ``/`` in names for hierarchy (``"classes/S/emlm/W"``).
    metadata
        JSON-serialisable description of the model. ``format_version`` and the package
        version are added here.
    """
    header: dict[str, Any] = {}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(arrays):
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved and cannot name a model array")
        dtype, array = _as_storable(name, arrays[name])
        blob = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    try:
        metadata_text = json.dumps(dict(metadata), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model metadata of kind '{kind}' is not JSON-serialisable: {exc}") from None
    header["__metadata__"] = {
        "format_version": str(FORMAT_VERSION),
        "kind": kind,
        "clusterforce_version": __version__,
        "metadata": metadata_text,
        "checksum": _CHECKSUM_PLACEHOLDER,
    }
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)  # align the data section to 8 bytes
    raw = bytearray(b"".join([struct.pack("<Q", len(header_bytes)), header_bytes, *blobs]))
    digits = _checksum_digits(raw)
    raw[digits : digits + 8] = b"%08x" % zlib.crc32(raw)
    return bytes(raw)


def _checksum_digits(raw: bytes | bytearray) -> int:
    """Offset of the checksum's 8 hex digits in a file's bytes (-1 if the header has none).

    The key is searched in the header only; in the header JSON the metadata text is escaped, so the
    unescaped key can only be the checksum field itself.
    """
    (n_header,) = struct.unpack("<Q", raw[:8])
    at = bytes(raw[8 : 8 + n_header]).find(_CHECKSUM_KEY)
    return -1 if at < 0 else 8 + at + len(_CHECKSUM_KEY)


def _verify_checksum(path: Path, raw: bytes, stored: str) -> None:
    """Raise ModelFileError unless the CRC-32 of ``raw`` (its checksum digits zeroed) equals ``stored``."""
    digits = _checksum_digits(raw)
    if (
        not stored.startswith("crc32:")
        or len(stored) != 14
        or digits < 0
        or raw[digits : digits + 8].decode("ascii", "replace") != stored[6:]
    ):
        raise ModelFileError(f"{path}: field 'checksum' is damaged ({stored!r}); the file is damaged: copy it again or retrain")
    crc = zlib.crc32(b"00000000", zlib.crc32(memoryview(raw)[:digits]))
    crc = zlib.crc32(memoryview(raw)[digits + 8 :], crc)
    if f"{crc:08x}" != stored[6:]:
        raise ModelFileError(
            f"{path}: checksum mismatch (stored {stored[6:]}, computed {crc:08x}): the file is damaged; copy it again or retrain"
        )


def save(
    path: str | os.PathLike,
    *,
    kind: str,
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any],
) -> int:
    """Write a model file atomically (a temporary file renamed into place); returns its size in bytes.

    Parameters
    ----------
    path
        Destination, conventionally ``*.cfm``.
    kind, arrays, metadata
        As for :func:`to_bytes`.
    """
    path = Path(path)
    try:
        data = to_bytes(kind=kind, arrays=arrays, metadata=metadata)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    log.info("wrote %s (%s, kind %s)", path, human_size(len(data)), kind)
    return len(data)


def human_size(n_bytes: int) -> str:
    """``n_bytes`` as kB/MB/GB (powers of 1000), e.g. ``"48.2 MB"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} B"


@dataclass
class ModelFile:
    """A model file read into memory."""

    path: Path
    kind: str
    format_version: int
    clusterforce_version: str
    metadata: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(repr=False)
    stored_dtypes: dict[str, str] = field(default_factory=dict, repr=False)  # on disk: F64, F32 or I64
    size: int = 0  # bytes

    def array(self, name: str, *, shape: tuple[int | None, ...] | None = None, dtype: Any = None) -> np.ndarray:
        """Return array ``name``, checking its shape (``None`` = any length on that axis) and dtype."""
        if name not in self.arrays:
            raise ModelFileError(f"{self.path}: field '{name}' is missing; the file was not written by this model kind or is damaged")
        value = self.arrays[name]
        if dtype is not None and value.dtype != np.dtype(dtype):
            raise ModelFileError(f"{self.path}: field '{name}' has dtype {value.dtype}, expected {np.dtype(dtype)}")
        if shape is not None and (
            len(shape) != value.ndim or any(want is not None and want != got for want, got in zip(shape, value.shape))
        ):
            want = tuple("*" if s is None else s for s in shape)
            raise ModelFileError(f"{self.path}: field '{name}' has shape {value.shape}, expected {want}")
        return value

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Context for building a model from this file: a missing metadata key (KeyError) or an
        inconsistent value (TypeError, ValueError) becomes one ModelFileError naming the file."""
        try:
            yield
        except KeyError as exc:
            raise ModelFileError(f"{self.path}: field {exc} is missing from the {self.kind} model") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{self.path}: inconsistent {self.kind} model: {exc}") from None


def load(path: str | os.PathLike, *, kind: str | None = None) -> ModelFile:
    """Read a model file, validating its header, format version, kind and array sizes."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file: {exc.strerror}") from None
    if len(raw) < 8:
        raise ModelFileError(f"{path}: truncated model file ({len(raw)} bytes, not even a header length)")
    (n_header,) = struct.unpack("<Q", raw[:8])
    if n_header > _MAX_HEADER_BYTES:
        raise ModelFileError(f"{path}: not a clusterforce model file (header length {n_header} bytes is implausible)")
    if 8 + n_header > len(raw):
        raise ModelFileError(f"{path}: truncated model file (header needs {n_header} bytes, file has {len(raw) - 8})")
    try:
        header = json.loads(raw[8 : 8 + n_header])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not a clusterforce model file (header is not JSON: {exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a clusterforce model file (header is not a JSON object)")
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or "format_version" not in meta or "kind" not in meta:
        raise ModelFileError(f"{path}: not a clusterforce model file (no format_version/kind in __metadata__)")
    try:
        version = int(meta["format_version"])
    except ValueError:
        raise ModelFileError(f"{path}: field 'format_version' is {meta['format_version']!r}, not an integer") from None
    if version not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{path}: unknown format_version {version}; this clusterforce ({__version__}) reads "
            f"format_version {', '.join(map(str, READABLE_VERSIONS))} — install the clusterforce version that wrote the file"
        )
    if version >= 2 and not isinstance(meta.get("checksum"), str):
        raise ModelFileError(f"{path}: no checksum in a format_version {version} file; the file is damaged: copy it again or retrain")
    if kind is not None and meta["kind"] != kind:
        raise ModelFileError(f"{path}: model kind is '{meta['kind']}', expected '{kind}'")
    try:
        metadata = json.loads(meta.get("metadata", "{}"))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: field 'metadata' is not valid JSON: {exc}") from None

    data = memoryview(raw)[8 + n_header :]
    spans: dict[str, tuple[np.dtype, tuple[int, ...], int, int]] = {}
    for name, info in header.items():
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = tuple(int(s) for s in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{path}: field '{name}' has a malformed header entry {info!r}") from None
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end - begin != expected or begin < 0:
            raise ModelFileError(f"{path}: field '{name}' holds {end - begin} bytes but shape {shape} needs {expected}")
        if end > len(data):
            raise ModelFileError(f"{path}: truncated model file (field '{name}' ends at byte {end} of a {len(data)}-byte data section)")
        spans[name] = (dtype, shape, begin, end)
    if version >= 2:
        _verify_checksum(path, raw, meta["checksum"])
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, shape, begin, end) in spans.items():
        array = np.frombuffer(data[begin:end], dtype=dtype).reshape(shape)
        arrays[name] = array.astype(np.float64 if dtype.kind == "f" else dtype.newbyteorder("="))
    return ModelFile(
        path=path,
        kind=meta["kind"],
        format_version=version,
        clusterforce_version=meta.get("clusterforce_version", "unknown"),
        metadata=metadata,
        arrays=arrays,
        stored_dtypes={name: next(k for k, v in _DTYPES.items() if v == dt) for name, (dt, *_rest) in spans.items()},
        size=len(raw),
    )
