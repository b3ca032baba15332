"""One-file model storage: tensors and plain Python values only, written atomically.

Files are read with ``torch.load(weights_only=True)``, which rebuilds tensors, numbers,
strings, lists and dicts and never runs code stored in the file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "dfr-model"
FORMAT_VERSION = 2  # 2: scoring settings gathered in one "scoring" parameter


def write_model_file(path: str | os.PathLike, payload: dict[str, Any], *, overwrite: bool = True) -> None:
    """Write ``payload`` (plus format fields) to ``path`` atomically: a temporary file, then rename."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: output folder does not exist")
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(record, stream)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a model file written by :func:`write_model_file`, checking its format version."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable dfr model file ({type(error).__name__}: {error})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a dfr model file")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: model file format version {version} (written by dfr {record.get('library_version', '?')}) "
            f"cannot be read by this dfr, which reads format version {FORMAT_VERSION}; "
            "refit the model or use the dfr version that wrote it"
        )
    return record
