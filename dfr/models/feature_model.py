"""Models on DFR's regional features: the shared base of DFR and the feature-space heads.

A frozen backbone turns each image, resized to ``image_size`` (H, W) or cut into tiles of it
(:class:`dfr.api.tiled.TiledModel`), into a regional feature map (C, H/4, W/4)
(:mod:`dfr.models.features`); a head scores every position, and the position scores, resized
bilinearly to the input's own size, are the anomaly map. DFR's head is a trained
autoencoder; ``baselines`` adds a PCA residual and a patch memory bank on the same features.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dfr import distributed
from dfr.api import params
from dfr.api.tiled import TiledModel
from dfr.data.datasets import batches
from dfr.data.io import resize_image
from dfr.data.tiles import as_size
from dfr.models.backbones import build_backbone
from dfr.models.features import RegionalFeatureExtractor

#: Feature vectors cached for fitting by ``positions_per_image="auto"``, spread over the images.
CACHED_VECTORS = 51_200
INFERENCE_BATCH = 4


class RegionalFeatureModel(TiledModel):
    """Base of the models that score DFR's regional feature vectors position by position.

    Subclasses implement ``_fit_head(images, rng)`` (after :meth:`_build_extractor`),
    ``_position_scores(features)`` ((B, C, h, w) → (B, h, w), higher is more anomalous) and
    ``_head_state()`` / ``_load_head_state(state)``; the backbone weights are saved here.

    Args:
        backbone: ``"vgg19"`` (plain torch, the paper's) or ``"timm:<model name>"`` (needs
            ``dfr[timm]``; see docs/backbones.md and :func:`dfr.models.backbones.build_backbone`).
        weights: ``"imagenet"`` (for VGG19 torchvision's checkpoint, fetched once and cached),
            a path to a local checkpoint, or ``None`` for seeded random weights (tests only).
        layers: backbone outputs to use; ``None`` takes the backbone's default (for VGG19 the
            paper's 12 ReLU outputs relu1_1 … relu4_4, 3456 channels).
        image_size: the network input: a side S (a square) or (height, width), e.g.
            ``(360, 640)`` (``360x640`` on the command line); each side a multiple of 4, at
            least 16. Images are resized to it whole, or cut into tiles (``tile_size``).
        reflect_padding: reflection instead of zero padding in VGG19, as in the paper.
        official_border: VGG19 layers followed by a conv keep their 1-pixel reflection border,
            as the official DFR code returns them (to reproduce published numbers; see
            docs/dfr.md); needs ``backbone="vgg19"`` and ``reflect_padding``.
        common: ``tile_size``, ``tile_overlap`` (:class:`dfr.api.tiled.TiledModel`),
            ``scoring``, ``seed``, ``device`` (:class:`dfr.AnomalyModel`).
    """

    PARAMETERS = {
        "backbone": params.Rule(lambda name: isinstance(name, str) and (name == "vgg19" or name.startswith("timm:")),
                                "'vgg19' or 'timm:<timm model name>'"),
        "image_size": params.size_rule(lambda side: side >= 16 and side % 4 == 0, "a multiple of 4 and at least 16",
                                       rectangles=True),
        "reflect_padding": params.boolean,
        "official_border": params.boolean,
    }
    CONSTRAINTS = (params.Constraint(
        ("official_border", "backbone", "reflect_padding"),
        lambda official, backbone, reflect: not official or (backbone == "vgg19" and reflect),
        "official_border=True reproduces the official DFR code's VGG19 and needs backbone='vgg19' with "
        "reflect_padding=True"),)

    def __init__(
        self,
        *,
        backbone: str = "vgg19",
        weights: str | None = "imagenet",
        layers: tuple[str, ...] | list[str] | None = None,
        image_size: int | tuple[int, int] = 256,
        reflect_padding: bool = True,
        official_border: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.backbone = backbone
        self.weights = weights
        self.layers = None if layers is None else tuple(layers)
        self.image_size = image_size
        self.reflect_padding = reflect_padding
        self.official_border = official_border

    # ----------------------------------------------------------------- hooks for the heads

    def _position_scores(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _head_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_head_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- features

    def _build_extractor(self, weights: str | None, warn: bool = True, layers: list[str] | None = None) -> None:
        """Set ``extractor_``: the backbone (random weights seeded by ``seed``) and regional pooling
        of ``layers`` (default: ``self.layers``, else the backbone's default layers)."""
        backbone = build_backbone(
            self.backbone, weights, reflect_padding=self.reflect_padding, official_border=self.official_border,
            seed=self.seed, warn=warn,
        )
        layers = layers or (backbone.default_layers if self.layers is None else self.layers)
        self.extractor_ = RegionalFeatureExtractor(backbone, layers, self.network_size()).to(self.device_)
        self.input_normalisation_ = (list(backbone.mean), list(backbone.std))

    def network_size(self) -> tuple[int, int]:
        return as_size(self.image_size)

    @property
    def positions(self) -> int:
        """Positions of one regional feature map: (H/4) x (W/4)."""
        height, width = self.network_size()
        return (height // 4) * (width // 4)

    def _cache_per_image(self, rule: int | str, images: int) -> int:
        """Positions to sample per image: ``rule`` itself, or for "auto" ``CACHED_VECTORS``
        spread over the ``images`` of all processes."""
        if rule == "auto":
            return min(self.positions, math.ceil(CACHED_VECTORS / distributed.total(images)))
        return min(int(rule), self.positions)

    def _preprocess(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 1|3) float in [0, 1] → (3, h, w) tensor at the network size, normalised for the backbone."""
        height, width = self.network_size()
        resized = resize_image(image, height, width).reshape(height, width, -1)
        if resized.shape[2] == 1:
            resized = np.repeat(resized, 3, axis=2)
        mean, std = (np.array(values, np.float32) for values in self.input_normalisation_)
        return torch.from_numpy(((resized - mean) / std).transpose(2, 0, 1).copy())

    def _input_batches(self, images: Sequence[np.ndarray], desc: str | None, batch_size: int = INFERENCE_BATCH) -> Iterator[torch.Tensor]:
        """Network inputs (B, 3, h, w) on the CPU, ``batch_size`` images at a time (a lazy
        dataset is read ahead by ``workers`` processes); a progress bar named ``desc``."""
        name = type(self).__name__
        total = math.ceil(len(images) / batch_size)
        for batch in tqdm(batches(images, batch_size, workers=self.workers), total=total, desc=f"{name}: {desc}",
                          unit="batch", disable=None if desc else True):
            yield torch.stack([self._preprocess(image) for image in batch])

    def _feature_batches(self, images: Sequence[np.ndarray], desc: str | None, batch_size: int = INFERENCE_BATCH) -> Iterator[torch.Tensor]:
        """Regional features (B, C, h/4, w/4) on the model's device, ``batch_size`` images at a time.

        The features come in channels-last memory layout (see :func:`dfr.models.features.regional_features`).
        """
        for inputs in self._input_batches(images, desc, batch_size):
            yield self.extractor_(inputs.to(self.device_, non_blocking=True))

    def _sample_vectors(self, images: Sequence[np.ndarray], per_image: int, rng: np.random.Generator) -> torch.Tensor:
        """``per_image`` seeded random positions of every image's feature map: (n, C) float32 on CPU.

        ``rng`` draws the positions of every training image of every process in input order;
        each process keeps the draws of its own images (:func:`dfr.distributed.shard`), so an
        image's positions, and ``rng`` afterwards, do not depend on the number of processes.
        """
        per_image = min(per_image, self.positions)
        total = distributed.total(len(images))
        mine = distributed.shard(total)
        vectors = torch.empty(len(images) * per_image, self.extractor_.channels)  # one block: no heap fragments
        drawn, done = 0, 0
        with distributed.together():
            for features in self._feature_batches(images, "features"):
                for one in features.flatten(2).cpu():
                    while drawn <= mine[done]:
                        chosen, drawn = rng.choice(self.positions, size=per_image, replace=False), drawn + 1
                    vectors[done * per_image:(done + 1) * per_image] = one[:, torch.from_numpy(chosen)].T
                    done += 1
        for _ in range(drawn, total):
            rng.choice(self.positions, size=per_image, replace=False)
        return vectors

    def _gather_vectors(self, vectors: torch.Tensor, per_image: int, rows: Callable[[int], np.ndarray] | None = None
                        ) -> torch.Tensor:
        """Rows ``rows(total)`` (default: all) of every process's sampled ``vectors`` (n, C), in
        the order that one process holding all images would have them; the same on every process."""
        per_image = min(per_image, self.positions)
        total = distributed.total(len(vectors) // per_image) * per_image
        chosen = np.arange(total) if rows is None else np.sort(rows(total))
        world, rank = distributed.world_size(), distributed.rank()
        mine = chosen[(chosen // per_image) % world == rank]
        local = torch.from_numpy((mine // per_image // world) * per_image + mine % per_image)
        parts = distributed.all_gather((mine, vectors[local]))
        order = torch.from_numpy(np.argsort(np.concatenate([part[0] for part in parts]), kind="stable"))
        return torch.cat([part[1] for part in parts])[order]

    # ----------------------------------------------------------------- maps and persistence

    def _inference_network(self) -> "PositionScores":
        return PositionScores(self.extractor_, self._position_scores)

    def input_spec(self) -> dict[str, Any]:
        mean, std = self.input_normalisation_
        return {"shape": [None, 3, *self.network_size()], "layout": "NCHW", "channels": "RGB",
                "range": [0.0, 1.0], "normalisation": {"mean": list(mean), "std": list(std)},
                "resize": "area when shrinking, else bilinear, to the network size; then (x - mean) / std",
                **self.tiling_spec()}

    def _restore_input_spec(self, spec: dict[str, Any]) -> None:
        self.input_normalisation_ = (spec["normalisation"]["mean"], spec["normalisation"]["std"])

    def _view_maps(self, images: list[np.ndarray]) -> list[np.ndarray]:
        maps: list[np.ndarray] = []
        for inputs in self._input_batches(images, "anomaly maps"):
            for scores in self._run_network(inputs):
                height, width = images[len(maps)].shape[:2]
                resized = F.interpolate(scores[None, None], size=(height, width), mode="bilinear", align_corners=True)
                maps.append(resized[0, 0].numpy())
        return maps

    def _state(self) -> dict[str, Any]:
        return {
            "backbone": self.extractor_.backbone.weights_state(self.extractor_.layers),
            "backbone_origin": getattr(self.extractor_.backbone, "weights_origin", None),
            "layers": list(self.extractor_.layers),
            **self._head_state(),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        # the layers the model was fitted on, whatever the backbone's default is today
        self._build_extractor(None, warn=False, layers=state.get("layers"))
        try:
            self.extractor_.backbone.load_weights_state(state["backbone"], self.extractor_.layers)
        except ValueError as error:
            if "layers" in state:
                raise
            raise ValueError(f"{error}. This model file does not record its layers and {self.backbone}'s default "
                             "layers have changed since it was written: refit the model") from None
        if state.get("backbone_origin") is not None:
            self.extractor_.backbone.weights_origin = state["backbone_origin"]
        self._load_head_state(state)


class PositionScores(torch.nn.Module):
    """Regional features of a batch, scored position by position: (B, 3, H, W) → (B, H/4, W/4).

    ``head`` maps features (B, C, s, s) to scores (B, s, s), higher is more anomalous."""

    def __init__(self, extractor: RegionalFeatureExtractor, head: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.extractor, self.head = extractor, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.extractor(images))


def principal_components(vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PCA of (n, C) vectors in float64: mean (C,), variances (C,) descending, components (C, C) as columns."""
    data = vectors.double()
    mean = data.mean(0)
    centred = data - mean
    covariance = centred.T @ centred / max(len(centred) - 1, 1)
    variances, components = torch.linalg.eigh(covariance)
    return mean, variances.flip(0).clamp_min(0), components.flip(1)


def latent_size(variances: torch.Tensor, explained_variance: float) -> int:
    """Fewest leading components whose variances keep ``explained_variance`` of the total."""
    ratio = variances / variances.sum()
    kept = int(torch.searchsorted(ratio.cumsum(0), torch.tensor(explained_variance, dtype=ratio.dtype))) + 1
    return min(kept, len(variances))
