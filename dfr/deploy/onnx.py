"""ONNX files of fitted models: writing them, and reading them back to predict with onnxruntime.

``model.export_onnx(path)`` (:func:`write_onnx`) writes one graph: the model's inference network, from a batch of network
inputs to the anomaly maps at network size (free batch axis; PoolAE's height and width are
free too). The graph's metadata (key ``dfr``, JSON) holds what the rest of prediction needs:
the model class and parameters (scoring and box settings included), threshold, score
statistics, the normal level per position, and the input spec: shape, layout, channels,
normalisation. Another runtime reads the input spec to feed the graph; ``dfr.load(path)``
(:func:`read_onnx`) rebuilds the dfr model around an onnxruntime session, so that ``predict`` and ``dfr predict``
give the same maps, masks, boxes and files as the ``.dfr`` model, with pre- and
post-processing in numpy and OpenCV. Needs the ``export`` extra (``pip install 'dfr[export]'``).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfr.outputs.files import atomic_path

METADATA_KEY = "dfr"
FORMAT = "dfr-onnx"
FORMAT_VERSION = 1
OPSET = 18
#: Size given to the free spatial axes of the example input (a multiple of every model's stride).
EXAMPLE_SIDE = 64


def _require(*modules: str) -> None:
    """Import ``modules`` or say which extra installs them."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ImportError(f"ONNX export and prediction need the package {name!r}: pip install 'dfr[export]' "
                              "(onnx, onnxruntime, onnxscript)") from None


def write_onnx(network: torch.nn.Module, shape: list[int | None], metadata: dict[str, Any], path: str | os.PathLike,
               *, device: torch.device | str = "cpu", overwrite: bool = False) -> Path:
    """Write ``network`` as one ONNX graph with input ``input`` of ``shape`` (``None``: a free
    axis; axis 0 is the batch) and output ``anomaly_map``, and ``metadata`` (JSON) under the key
    ``dfr``; atomically. Returns the path. Raises ``FileExistsError`` for an existing file
    unless ``overwrite``."""
    _require("onnx", "onnxscript")
    import onnx

    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"{path}: an ONNX file name must end in .onnx")
    example = torch.rand([2 if axis == 0 else EXAMPLE_SIDE if size is None else size
                          for axis, size in enumerate(shape)], device=device)
    free = {axis: torch.export.Dim("batch" if axis == 0 else f"axis{axis}") for axis, size in enumerate(shape)
            if size is None}
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    with atomic_path(path, overwrite=overwrite) as temporary:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's exporter on its own deprecated internals
            program = torch.onnx.export(network.eval(), (example,), dynamo=True, input_names=["input"],
                                        output_names=["anomaly_map"], dynamic_shapes=(free,), opset_version=OPSET,
                                        external_data=False, verbose=False)
        proto = program.model_proto
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(record)
        onnx.save(proto, temporary)
    return path


def read_onnx(path: str | os.PathLike) -> tuple[dict[str, Any], Any]:
    """The dfr metadata of the ONNX file at ``path`` and an onnxruntime session (CPU) running its graph."""
    _require("onnxruntime")
    import onnxruntime

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    options = onnxruntime.SessionOptions()
    # no busy-waiting threads between runs: pre- and post-processing share the CPU with them
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:
        raise ValueError(f"{path}: not a readable ONNX file ({type(error).__name__}: {error})") from None
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        raise ValueError(f"{path}: an ONNX file without dfr metadata; only files written by dfr export can be loaded")
    record = json.loads(text)
    if record.get("format") != FORMAT or record.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: dfr ONNX format version {record.get('format_version')} (written by dfr "
            f"{record.get('library_version', '?')}) cannot be read by this dfr, which reads version {FORMAT_VERSION}; "
            "export the model again with this dfr"
        )
    return record, session


def run_session(session: Any, batch: torch.Tensor) -> torch.Tensor:
    """One onnxruntime run of the exported network on ``batch``: float32 tensor on the CPU."""
    inputs = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
    return torch.from_numpy(session.run(None, {"input": inputs})[0])
