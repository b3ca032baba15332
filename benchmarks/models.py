"""The models the suite can run, by name, with their CPU-sized benchmark settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dfr import DFR, AnomalyModel
from dfr.backbones.timm_backbone import OFFLINE_BACKBONE, pretrained_offline_available


@dataclass
class ModelSpec:
    """How to build one benchmark model and which datasets it applies to.

    ``build(task, seed)`` returns an unfitted model; ``takes_clips`` models get whole clips
    (video tasks), the others single images or frames. Image models get the pool's region
    masks. ``label`` names backbone and weights in tables.
    """

    name: str
    label: str
    datasets: tuple[str, ...]
    build: Callable[[Any, int], AnomalyModel]
    takes_clips: bool = False


#: Scoring of the pool case, for every model on pool data: a fixed camera, so maps are
#: divided by their normal level per position (lane ropes); swimmers are a few pixels across,
#: so maps are smoothed with σ = 1 pixel instead of the default 4, with stricter seeds, an
#: opening and closing of 2 % of the shorter side, and no peak cut (chosen on the validation
#: split, docs/boxes.md).
POOL_SCORING = {"smoothing_sigma": 1.0, "normalise_positions": True, "seed_ratio": 2.5, "opening": 0.02,
                "closing": 0.02, "peak_fraction": 0.0}


def task_scoring(task: Any) -> dict[str, Any] | None:
    """The scoring settings every model gets on ``task``: the pool case's, else the defaults (``None``)."""
    return POOL_SCORING if task.dataset == "pool" else None


def _dfr(backbone: str, weights: str | None, size: int = 128) -> Callable[[Any, int], AnomalyModel]:
    return lambda task, seed: DFR("cpu", backbone=backbone, weights=weights, image_size=size,
                                  scoring=task_scoring(task), seed=seed)


def _head(class_name: str, backbone: str, weights: str | None, size: int = 128) -> Callable[[Any, int], AnomalyModel]:
    """A feature-space peer of DFR on the same backbone, weights and input size."""

    def build(task, seed):
        import baselines

        return getattr(baselines, class_name)(backbone=backbone, weights=weights, image_size=size,
                                              scoring=task_scoring(task), seed=seed)

    return build


def _baseline(class_name: str) -> Callable[[Any, int], AnomalyModel]:
    """A raw-pixel baseline in its CPU preset."""

    def build(task, seed):
        import baselines

        return getattr(baselines, class_name)("cpu", scoring=task_scoring(task), seed=seed)

    return build


KNOWN_MODELS = ("dfr", "dfr-effnet", "pca-residual", "pca-residual-effnet", "memory-bank", "memory-bank-effnet",
                "cae", "stae", "convlstm", "poolae")
FEATURE_DATASETS = ("mvtec", "pool", "ucsd")


def model_specs(vgg_weights: str | None = None) -> dict[str, ModelSpec]:
    """Every model the suite knows. ``vgg_weights``: VGG19 checkpoint for DFR (None = random)."""
    vgg_label = "VGG19, " + ("ImageNet" if vgg_weights else "random weights")
    specs = [
        ModelSpec("dfr", f"DFR ({vgg_label})", FEATURE_DATASETS, _dfr("vgg19", vgg_weights)),
        ModelSpec("pca-residual", f"PCA residual ({vgg_label})", FEATURE_DATASETS,
                  _head("PCAResidual", "vgg19", vgg_weights)),
        ModelSpec("memory-bank", f"Memory bank ({vgg_label})", FEATURE_DATASETS,
                  _head("PatchMemoryBank", "vgg19", vgg_weights)),
        ModelSpec("cae", "CAE (raw pixels)", ("mvtec", "ucsd"), _baseline("CAE")),
        ModelSpec("stae", "STAE (raw pixels)", ("ucsd",), _baseline("STAE"), takes_clips=True),
        ModelSpec("convlstm", "ConvLSTM-AE (raw pixels)", ("ucsd",), _baseline("ConvLSTMAE"),
                  takes_clips=True),
        ModelSpec("poolae", "Pool AE (raw pixels)", ("pool",), _baseline("PoolAE")),
    ]
    if pretrained_offline_available():
        effnet = "EfficientNet-Lite0, ImageNet"
        specs[3:3] = [
            ModelSpec("dfr-effnet", f"DFR ({effnet})", FEATURE_DATASETS, _dfr(OFFLINE_BACKBONE, "imagenet", size=256)),
            ModelSpec("pca-residual-effnet", f"PCA residual ({effnet})", FEATURE_DATASETS,
                      _head("PCAResidual", OFFLINE_BACKBONE, "imagenet", size=256)),
            ModelSpec("memory-bank-effnet", f"Memory bank ({effnet})", FEATURE_DATASETS,
                      _head("PatchMemoryBank", OFFLINE_BACKBONE, "imagenet", size=256)),
        ]
    return {spec.name: spec for spec in specs}

