"""ONNX export of a fitted model, and loading it back to predict with onnxruntime.

:func:`export_onnx` writes one graph: the model's inference network, from a batch of network
inputs to the anomaly maps at network size (free batch axis; PoolAE's height and width are
free too). The graph's metadata (key ``dfr``, JSON) holds what the rest of prediction needs:
the model class and parameters (scoring and box settings included), threshold, score
statistics, the normal level per position, and the input spec: shape, layout, channels,
normalisation. Another runtime reads the input spec to feed the graph; :func:`load_onnx`
rebuilds the dfr model around an onnxruntime session, so that ``predict`` and ``dfr predict``
give the same maps, masks, boxes and files as the ``.dfr`` model, with pre- and
post-processing in numpy and OpenCV. Needs the ``export`` extra (``pip install 'dfr[export]'``).
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfr.model import AnomalyModel, _plain

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


def export_onnx(model: AnomalyModel, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write fitted ``model`` to ``path`` (``.onnx``) atomically; return the path.

    Raises ``FileExistsError`` for an existing file unless ``overwrite``."""
    _require("onnx", "onnxscript")
    import onnx

    model._check_fitted()
    model._check_has_weights("export")
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"{path}: an ONNX file name must end in .onnx")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: file exists (use --overwrite / overwrite=True to replace it)")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: output folder does not exist")
    spec = model._input_spec()
    example = torch.rand([2 if axis == 0 else EXAMPLE_SIDE if size is None else size
                          for axis, size in enumerate(spec["shape"])], device=model.device_)
    free = {axis: torch.export.Dim("batch" if axis == 0 else f"axis{axis}") for axis, size in enumerate(spec["shape"])
            if size is None}
    network = model._inference_network().eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's exporter on its own deprecated internals
        program = torch.onnx.export(network, (example,), dynamo=True, input_names=["input"],
                                    output_names=["anomaly_map"], dynamic_shapes=(free,), opset_version=OPSET,
                                    external_data=False, verbose=False)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(_metadata(model, spec))
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        onnx.save(proto, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _metadata(model: AnomalyModel, spec: dict[str, Any]) -> dict[str, Any]:
    from dfr import __version__

    scale = model.position_scale_
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "params": {name: _plain(value) for name, value in model.get_params().items() if name != "device"},
        "world_size": model.world_size_,
        "scoring": {
            "threshold": model.threshold_,
            "stats": model.score_stats_,
            "position_scale": None if scale is None else scale.tolist(),
        },
        "input": {"name": "input", "dtype": "float32", **spec},
        "output": {"name": "anomaly_map", "dtype": "float32", "layout": model._output_layout},
    }


def load_onnx(path: str | os.PathLike) -> AnomalyModel:
    """The model exported to ``path``, its network in an onnxruntime session (CPU)."""
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
    model = AnomalyModel._from_record(record, path, "cpu")
    model._restore_input_spec(record["input"])
    model.onnx_session_ = session
    return model


def run_session(session: Any, batch: torch.Tensor) -> torch.Tensor:
    """One onnxruntime run of the exported network on ``batch``: float32 tensor on the CPU."""
    inputs = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
    return torch.from_numpy(session.run(None, {"input": inputs})[0])
