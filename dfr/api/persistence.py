"""The model-file record, for ``.dfr`` files and the metadata of exported ``.onnx`` files.

:func:`model_record` builds the record of a fitted model (its registered name and class,
parameters, threshold, statistics); :func:`model_from_record` turns one back into a model
without weights, whichever file it came from. :func:`write_model_file` and
:func:`read_model_file` store a record with the model's weights in one ``.dfr`` file:
tensors and plain Python values only, written atomically.

Files are read with ``torch.load(weights_only=True)``, which rebuilds tensors, numbers,
strings, lists and dicts and never runs code stored in the file. Each file holds a SHA-256
digest of its contents (:func:`content_digest`), checked on reading, so that a file changed
after writing (a flipped bit, a bad copy) is refused instead of predicting wrong maps.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfr.api import registry
from dfr.outputs.files import atomic_path
from dfr.scoring import ScoringSettings
from dfr.version import __version__

FORMAT = "dfr-model"
FORMAT_VERSION = 3  # 2: scoring settings gathered in one "scoring" parameter; 3: content digest
#: The file's own fields, beside the caller's payload.
RESERVED_KEYS = ("format", "format_version", "digest")


def write_model_file(path: str | os.PathLike, payload: dict[str, Any], *, overwrite: bool = True) -> None:
    """Write ``payload`` (plus format fields) to ``path`` atomically: a temporary file, then rename."""
    reserved = sorted(set(RESERVED_KEYS) & payload.keys())
    if reserved:
        raise ValueError(f"{path}: payload keys {reserved} are reserved for the file's own fields")
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "digest": content_digest(payload), **payload}
    with atomic_path(path, overwrite=overwrite) as temporary, open(temporary, "wb") as stream:
        torch.save(record, stream)  # a stream, not a path: torch names the archive after a path's (random) name


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


#: Constructor arguments added since model files were first written, with the value that
#: reproduces what a file written before them did (a model without the argument behaved so).
ADDED_PARAMETERS = {"tile_size": None}
#: Where model files written before the registry name model classes that have moved since.
FORMER_CLASS_PATHS = {"dfr.dfr_model.DFR": "dfr.models.dfr.DFR"}


def model_record(model: Any, *, as_json: bool = False) -> dict[str, Any]:
    """The record of fitted ``model`` without its weights: library version, registered name and
    class, constructor parameters (``device`` left out), world size, threshold, score statistics
    and the normal level per position (a tensor, or a list with ``as_json``)."""
    cls = type(model)
    scale = model.position_scale_
    if scale is not None:
        scale = scale.tolist() if as_json else torch.from_numpy(scale)
    return {
        "library_version": __version__,
        "model": registry.name_of(cls),
        "model_class": f"{cls.__module__}.{cls.__qualname__}",
        "params": {name: plain(value) for name, value in model.get_params().items() if name != "device"},
        "world_size": model.world_size_,
        "scoring": {"threshold": model.threshold_, "stats": model.score_stats_, "position_scale": scale},
    }


def model_from_record(record: dict[str, Any], path: str | os.PathLike, device: str) -> Any:
    """A model of the record's class and parameters on ``device`` with its threshold and
    statistics set, and no weights yet."""
    model = _record_class(record, path)(**_current_params(record, path), device=device)
    model.world_size_ = int(record.get("world_size", 1))
    model.threshold_ = float(record["scoring"]["threshold"])
    model.score_stats_ = dict(record["scoring"]["stats"])
    scale = record["scoring"].get("position_scale")
    model.position_scale_ = None if scale is None else np.asarray(scale, dtype=np.float32)
    return model


def plain(value: Any) -> Any:
    """A constructor argument as a plain value for the model file."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, ScoringSettings):
        return value.to_dict()
    return value


def _record_class(record: dict[str, Any], path: str | os.PathLike) -> type:
    """The registered class of a record: by its registered name, or for files written before
    the registry by the class path they store."""
    if "model" in record:
        try:
            return registry.model_class_of(record["model"])
        except ImportError as error:
            raise ValueError(f"{path}: model {record['model']!r} is not available ({error})") from None
        except ValueError:
            raise ValueError(f"{path}: model {record['model']!r} is not registered here (available: "
                             f"{', '.join(registry.list_models())}); install or register it before loading") from None
    stored = str(record.get("model_class"))
    found = registry.class_at_path(FORMER_CLASS_PATHS.get(stored, stored))
    if found is None:
        raise ValueError(f"{path}: model class {stored!r} is not a registered dfr model; register it before loading")
    return found


def _current_params(record: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """The file's constructor arguments, with settings that older versions stored in other units
    dropped and arguments added since set to their former behaviour (``ADDED_PARAMETERS``)."""
    params = dict(record["params"])
    for name, former in ADDED_PARAMETERS.items():
        if name not in params and name in _record_class(record, path).parameters():
            params[name] = former
    stored = dict(params.get("scoring") or {})
    if isinstance(stored.get("min_box_area"), int) and stored["min_box_area"] >= 1:
        warnings.warn(f"{path}: written by dfr {record.get('library_version', '?')} with min_box_area in pixels "
                      f"({stored.pop('min_box_area')}); this dfr takes it as a fraction of the image and uses the "
                      f"default {ScoringSettings.min_box_area} (change it with predict(..., scoring=...))", stacklevel=4)
        params["scoring"] = stored
    return params
