"""One-file model storage: tensors and plain Python values only, written atomically.

Files are read with ``torch.load(weights_only=True)``, which rebuilds tensors, numbers,
strings, lists and dicts and never runs code stored in the file. Each file holds a SHA-256
digest of its contents (:func:`content_digest`), checked on reading, so that a file changed
after writing (a flipped bit, a bad copy) is refused instead of predicting wrong maps.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "dfr-model"
FORMAT_VERSION = 3  # 2: scoring settings gathered in one "scoring" parameter; 3: content digest
#: The file's own fields, beside the caller's payload.
RESERVED_KEYS = ("format", "format_version", "digest")


def write_model_file(path: str | os.PathLike, payload: dict[str, Any], *, overwrite: bool = True) -> None:
    """Write ``payload`` (plus format fields) to ``path`` atomically: a temporary file, then rename."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists (pass overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: output folder does not exist")
    reserved = sorted(set(RESERVED_KEYS) & payload.keys())
    if reserved:
        raise ValueError(f"{path}: payload keys {reserved} are reserved for the file's own fields")
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "digest": content_digest(payload), **payload}
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
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: refused: the file holds Python objects other than tensors and plain values, "
                         f"which dfr never loads (not a file written by dfr; {str(error).splitlines()[-1]})") from None
    except Exception as error:
        raise ValueError(f"{path}: not a readable dfr model file, truncated or damaged "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a dfr model file")
    version = record.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: model file format version {version} (written by dfr {record.get('library_version', '?')}) "
            f"cannot be read by this dfr, which reads format version {FORMAT_VERSION}; "
            "refit the model or use the dfr version that wrote it"
        )
    payload = {key: value for key, value in record.items() if key not in RESERVED_KEYS}
    if record.get("digest") != content_digest(payload):
        raise ValueError(f"{path}: damaged model file: its contents do not match the digest written with them "
                         "(changed or corrupted after saving); copy it again or refit")
    return record


def content_digest(value: Any) -> str:
    """SHA-256 (hex) of nested dicts, lists, tensors and plain values: types, shapes, dtypes,
    keys and every byte of every tensor."""
    hasher = hashlib.sha256()
    _feed(hasher, value)
    return hasher.hexdigest()


def _feed(hasher: "hashlib._Hash", value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        hasher.update(f"tensor {tensor.dtype} {tuple(tensor.shape)};".encode())
        hasher.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        hasher.update(f"dict {len(value)};".encode())
        for key, item in value.items():
            _feed(hasher, key)
            _feed(hasher, item)
    elif isinstance(value, (list, tuple)):
        hasher.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _feed(hasher, item)
    else:
        text = repr(value).encode("utf-8", "surrogatepass")
        hasher.update(f"{type(value).__name__} {len(text)};".encode() + text)
