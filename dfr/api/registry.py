"""The one model registry: model name → model class.

``dfr.load``, :func:`create_model`, every ``dfr`` command, ``dfr bench``, ``dfr demo`` and the
common test suite find models here, and nowhere else. Three sources fill it:

- dfr's own models (:data:`BUILTIN`);
- the ``dfr.models`` entry points of installed packages, read with :mod:`importlib.metadata`
  (this is how ``baselines`` registers its models, one line each in its ``pyproject.toml``,
  without dfr importing it)::

      [project.entry-points."dfr.models"]
      cae = "baselines.cae:CAE"

- :func:`register_model`, for a class defined in a script or notebook.

A class is imported only when its name is first used. What the command line, the bench and the
demo need to know of a model comes from its class (:class:`ModelInfo`).
"""
from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, TypeVar

#: Entry-point group through which installed packages add models.
ENTRY_POINT_GROUP = "dfr.models"
#: dfr's own models: name → ``"module:ClassName"``.
BUILTIN = {"dfr": "dfr.models.dfr:DFR"}

_registered: dict[str, type] = {}
Model = TypeVar("Model", bound=type)


@dataclass(frozen=True)
class ModelInfo:
    """What the command line, the bench and the demo need to know of a registered model.

    ``input_kind``: ``"images"`` or ``"clips"``; ``presets``: the names ``preset=`` takes (empty
    when the model has none); ``datasets``: the benchmark layouts it applies to (``"mvtec"``,
    ``"pool"``, ``"ucsd"``); ``takes_backbone``: whether it runs on a choice of backbones
    (``backbone=``); ``summary``: the first line of its docstring."""

    name: str
    model_class: type
    input_kind: str
    presets: tuple[str, ...]
    datasets: tuple[str, ...]
    takes_backbone: bool
    summary: str


def register_model(name: str, model_class: Model | None = None) -> Model | Callable[[Model], Model]:
    """Register ``model_class`` (a subclass of :class:`dfr.AnomalyModel`) under ``name``.

    Use as ``register_model("mine", Mine)`` or as a class decorator ``@register_model("mine")``.
    A name already taken by another class is refused."""

    def add(cls: Model) -> Model:
        if not (isinstance(cls, type) and all(hasattr(cls, hook) for hook in ("fit", "predict", "parameters", "PRESETS"))):
            raise TypeError(f"register_model({name!r}): {cls!r} is not a subclass of dfr.AnomalyModel")
        if name in _sources() and model_class_of(name) is not cls:
            raise ValueError(f"model name {name!r} is taken by {_path(model_class_of(name))}")
        _registered[name] = cls
        return cls

    return add if model_class is None else add(model_class)


def list_models() -> list[str]:
    """The names of every registered model, sorted (dfr's own, installed packages', registered)."""
    return sorted(_sources())


def model_class_of(name: str) -> type:
    """The model class registered as ``name``; a ValueError names the available ones."""
    sources = _sources()
    if name not in sources:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(sources))}")
    source = sources[name]
    if isinstance(source, type):
        return source
    if isinstance(source, str):
        module, _, qualname = source.partition(":")
        return getattr(importlib.import_module(module), qualname)
    return source.load()


def create_model(name: str, **params: Any) -> Any:
    """A new, unfitted model of the class registered as ``name``, built with ``params``."""
    return model_class_of(name)(**params)


def model_info(name: str) -> ModelInfo:
    """The facts about model ``name`` that the command line, the bench and the demo use."""
    cls = model_class_of(name)
    return ModelInfo(
        name=name, model_class=cls, input_kind=cls.input_kind, presets=tuple(cls.PRESETS),
        datasets=tuple(cls.datasets), takes_backbone="backbone" in cls.parameters(),
        summary=(inspect.getdoc(cls) or name).splitlines()[0],
    )


def name_of(model_class: type) -> str:
    """The registered name of ``model_class``; a ValueError when it is not registered."""
    for name in list_models():
        if model_class_of(name) is model_class:
            return name
    raise ValueError(f"{_path(model_class)} is not a registered model: register it with "
                     "dfr.register_model(name, cls) before saving or exporting it")


def class_at_path(path: str) -> type | None:
    """The registered class whose ``module.QualName`` is ``path`` (as model files before the
    registry stored it), or ``None``."""
    for name in list_models():
        cls = model_class_of(name)
        if _path(cls) == path:
            return cls
    return None


def _sources() -> dict[str, Any]:
    """Name → class, ``"module:Class"`` string or entry point, for every registered model."""
    return {**BUILTIN, **_installed(), **_registered}


@functools.cache
def _installed() -> dict[str, Any]:
    """The ``dfr.models`` entry points of the installed packages, read once per process."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP) if point.name not in BUILTIN}


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
