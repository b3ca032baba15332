"""The models ``dfr bench`` and ``dfr demo`` run: every registered model by its registry name,
CPU-sized, and for the models on a backbone an ``-effnet`` variant on the offline
EfficientNet-Lite0 ImageNet weights (``dfr-effnet``, ``memory-bank-effnet``, …).

Nothing here names a model: what a model needs comes from the registry
(:func:`dfr.model_info`), so a newly registered model is benchmarked as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dfr.api.registry import create_model, list_models, model_info
from dfr.models.backbones.timm_backbone import (
    OFFLINE_BACKBONE,
    pretrained_offline_available,
)

#: Suffix of the variant of a backbone model on :data:`OFFLINE_BACKBONE` with ImageNet weights.
EFFNET = "-effnet"
#: What ``dfr demo`` runs by default.
DEMO_MODELS = ("dfr", "dfr-effnet", "pca-residual-effnet", "memory-bank-effnet", "cae", "stae", "convlstm", "poolae")
#: Network input side of the backbone models in the bench: VGG19 at 128 (its 12 layers cost
#: 51 GFLOP per 256² image on a CPU), EfficientNet-Lite0 at 256.
VGG_SIZE, EFFNET_SIZE = 128, 256


@dataclass(frozen=True)
class BenchModel:
    """One model of a benchmark run: ``name`` as the user wrote it (its run folder), the label
    of its tables, the datasets it applies to, and ``build(scoring, seed)``, which returns a new
    unfitted model with a dataset's scoring settings and the seed."""

    name: str
    label: str
    datasets: tuple[str, ...]
    build: Callable[[dict[str, Any] | None, int], Any]


def bench_model(name: str, vgg_weights: str | None) -> BenchModel:
    """The bench model ``name`` (a registry name, with :data:`EFFNET` for a backbone model);
    ``vgg_weights``: the VGG19 checkpoint (``None``: random weights)."""
    base = name.removesuffix(EFFNET)
    info = model_info(base)
    effnet = name.endswith(EFFNET)
    if effnet and not info.takes_backbone:
        raise ValueError(f"{base} runs on no backbone, so there is no {name}")
    params: dict[str, Any] = {"preset": "cpu"} if "cpu" in info.presets else {}
    if effnet:
        params.update(backbone=OFFLINE_BACKBONE, weights="imagenet", image_size=EFFNET_SIZE)
        features = "EfficientNet-Lite0, ImageNet"
    elif info.takes_backbone:
        params.update(backbone="vgg19", weights=vgg_weights, image_size=VGG_SIZE)
        features = "VGG19, " + ("ImageNet" if vgg_weights else "random weights")
    else:
        features = "raw pixels"
    return BenchModel(name, f"{info.model_class.__name__} ({features})", info.datasets,
                      lambda scoring, seed: create_model(base, **params, scoring=scoring, seed=seed))


def available_names() -> list[str]:
    """Every bench model name that can run here: the registered models, and their ``-effnet``
    variants when the offline weights are installed."""
    names = list_models()
    if pretrained_offline_available():
        names += [name + EFFNET for name in names if model_info(name).takes_backbone]
    return sorted(names)


def bench_models(names: list[str], vgg_weights: str | None, *, dataset: str | None = None,
                 skip_unavailable: bool = False) -> list[BenchModel]:
    """The bench models ``names``. With ``skip_unavailable``, an ``-effnet`` variant whose weights
    are not installed is left out instead of refused; with ``dataset``, a model that does not
    apply to it is an error naming those that do."""
    if not names:
        raise ValueError(f"--models names no model; available: {', '.join(available_names())}")
    available = available_names()
    chosen = []
    for name in names:
        if name not in available:
            if skip_unavailable and name.endswith(EFFNET) and name.removesuffix(EFFNET) in list_models():
                continue
            raise ValueError(f"unknown or unavailable model {name!r}; available: {', '.join(available)}")
        chosen.append(bench_model(name, vgg_weights))
    if dataset is not None:
        misfits = [model.name for model in chosen if dataset not in model.datasets]
        if misfits:
            fitting = [name for name in available if dataset in model_info(name.removesuffix(EFFNET)).datasets]
            raise ValueError(f"models {misfits} do not apply to {dataset} data; models that do: {', '.join(fitting)}")
    return chosen
