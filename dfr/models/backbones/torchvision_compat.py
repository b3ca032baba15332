"""Import timm even where torchvision's compiled operators cannot load.

timm imports torchvision. A torchvision built for another torch variant (typically the CUDA
wheel next to a CPU-only torch) fails on import with ``RuntimeError: operator torchvision::nms
does not exist``: its compiled library did not load, and torchvision's Python code then
registers helpers for operators that were never declared. On exactly that error,
:func:`import_timm` declares the missing operator schemas, imports again and warns once.
Everything timm backbones need (plain convolutions, no torchvision operators) then works;
torchvision's compiled operators themselves (nms, roi_align, ...) stay unavailable.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import sys
import warnings
from types import ModuleType

import torch

KNOWN_ERROR = "operator torchvision::nms does not exist"
# The schemas torchvision's Python code needs to exist before it registers fake kernels.
_MISSING_OPS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
# Kept alive for the whole process: the declarations vanish with this object.
_library: torch.library.Library | None = None


def import_timm() -> ModuleType:
    """``import timm``, applying the operator workaround only on the known torchvision error."""
    try:
        return importlib.import_module("timm")
    except ImportError as error:
        raise ImportError(f"timm backbones need timm and torchvision ({error}): pip install 'dfr[timm]'") from None
    except RuntimeError as error:
        if KNOWN_ERROR not in str(error):
            raise
        cause = mismatch_message(error)
    declare_torchvision_ops(cause)
    try:
        return importlib.import_module("timm")
    except RuntimeError as error:
        raise RuntimeError(f"{cause}; declaring the missing operators did not help ({error})") from None


def mismatch_message(error: Exception) -> str:
    """The cause and the fix of the known error, in words."""
    try:
        torchvision = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        torchvision = "?"
    variant = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
    return (
        f"torchvision {torchvision} cannot load its compiled operators with torch {torch.__version__} "
        f"({variant}): the two come from different builds ('{error}'). Fix: install the torchvision "
        f"built for this torch, e.g. pip install torchvision --index-url https://download.pytorch.org/whl/cpu "
        f"for a CPU-only torch"
    )


def declare_torchvision_ops(cause: str) -> None:
    """Declare the operator schemas torchvision failed to load and forget its half-imported modules.

    Runs once per process (later calls do nothing) and warns when it does.
    """
    global _library
    if _library is not None:
        return
    for name in [name for name in sys.modules if name.split(".")[0] in ("torchvision", "timm")]:
        del sys.modules[name]
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _MISSING_OPS:
        _library.define(schema)
    warnings.warn(
        f"{cause}. dfr declared the missing operator schemas so that timm imports; timm backbones work, "
        "but torchvision's compiled operators (nms, roi_align, ...) stay unavailable in this process",
        RuntimeWarning,
        stacklevel=3,
    )
