"""DFR (Deep Feature Reconstruction): a feature autoencoder on frozen CNN regional features."""
from __future__ import annotations

import math
import time
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from dfr import distributed
from dfr.api import params
from dfr.api.training import train
from dfr.data.datasets import ImageDataset
from dfr.models.autoencoder import FeatureAutoencoder
from dfr.models.feature_model import (
    RegionalFeatureModel,
    latent_size,
    principal_components,
)

# Defaults each preset gives to the training arguments left as None.
PRESETS: dict[str, dict[str, Any]] = {
    # REFERENCE.md §1 as the authors ran it: full 64x64 maps computed on the fly, batches of
    # 4 images, Adam 1e-4, 150 epochs, hidden width (C + 2d) // 2. Meant for a GPU.
    "paper": {"positions_per_image": None, "batch_size": 4, "learning_rate": 1e-4, "epochs": 150, "hidden": "paper",
              "normalise": False, "input_noise": 0.0, "pca_skip": False},
    # CPU-practical: the same features and maps, but features are extracted once and a seeded
    # sample of positions is cached as vectors: "auto" spreads CACHED_VECTORS over the training
    # images (512 per image for 100 images; every position for small sets). The autoencoder
    # sees centred features divided by one global scale ("normalise"), learns to remove Gaussian
    # noise added to them (a denoising autoencoder, "input_noise") as a correction to their
    # PCA reconstruction ("pca_skip"), and Adam at 1e-3 runs TRAINING_STEPS steps on batches
    # of 1024 of them, whatever the number of images ("auto" epochs); the first hidden layer is
    # 512 wide whatever C. Why: docs/dfr.md.
    "cpu": {"positions_per_image": "auto", "batch_size": 1024, "learning_rate": 1e-3, "epochs": "auto", "hidden": 512,
            "normalise": True, "input_noise": 1.0, "pca_skip": True},
}
TRAINING_STEPS = 400
HIDDEN_CAP = 512


class DFR(RegionalFeatureModel):
    """Deep Feature Reconstruction (Shi et al. 2021) under the shared :class:`dfr.AnomalyModel` API.

    A frozen CNN (VGG19 by default) turns each image, resized to ``image_size`` (or each of its
    tiles), into a regional feature map (C, H/4, W/4) from ``layers``; a 1x1-conv autoencoder whose latent size ``d`` keeps
    ``explained_variance`` of the PCA variance reconstructs it. The anomaly map is the mean
    squared error over channels at each position, resized bilinearly to the input's size.

    Args:
        preset: ``"cpu"`` (default; practical on a CPU) or ``"paper"`` (the authors' settings,
            for a GPU). Arguments left as ``None`` take the preset's value.
        backbone, weights, layers, image_size, reflect_padding, official_border: the regional
            features (VGG19's 12 ReLU outputs of the paper by default); see
            :class:`dfr.models.feature_model.RegionalFeatureModel`.
        explained_variance: PCA variance fraction that fixes the latent size.
        latent_dim: fix the latent size instead of choosing it by PCA.
        pca_samples: feature vectors sampled across all training images for the PCA.
        hidden: width h of the outer hidden layers: a number (the cpu preset's: 512),
            ``"paper"`` for (C + 2d) // 2 or ``"capped"`` for that capped at ``HIDDEN_CAP`` =
            512; ``None`` takes the preset's.
        positions_per_image: ``None`` takes the preset's; the paper preset trains on whole
            maps (batches of ``batch_size`` images); a number caches that many sampled
            positions per image and trains on those vectors (batches of ``batch_size``
            vectors); ``"auto"`` (the cpu preset's) caches ``CACHED_VECTORS`` = 51 200 in all,
            spread evenly over the training images (at most every position of each).
        epochs, batch_size, learning_rate: Adam training of the autoencoder on MSE; ``epochs``
            ``"auto"`` (the cpu preset's) takes the fewest epochs that give
            ``TRAINING_STEPS`` = 400 optimiser steps, whatever the size of the training set.
        normalise: feed the autoencoder ``(x - μ) / s`` instead of the raw features ``x``, with
            μ the mean feature vector and s the root mean channel variance of the PCA sample
            (one scale for all channels, so their relative weight in the loss is unchanged);
            the map is then in units of s². ``None`` takes the preset's (cpu: on, paper: off).
        input_noise: train as a denoising autoencoder: Gaussian noise of standard deviation
            ``input_noise`` x s is added to each training input, while the target stays the
            clean features, so the network learns to pull vectors back towards normal ones
            rather than to copy whatever it gets. 0 turns it off. ``None`` takes the preset's
            (cpu: 1, paper: 0).
        pca_skip: add the PCA reconstruction of the input (its projection onto the ``d``
            leading principal components) to the autoencoder's output, so that the network
            learns only a correction to it, starting from zero: training starts from the PCA
            residual and can only improve on it for normal data. ``None`` takes the preset's
            (cpu: on, paper: off).
        scoring, seed, device: see :class:`dfr.AnomalyModel`; ``tile_size`` and
            ``tile_overlap``: see :class:`dfr.api.tiled.TiledModel` (by default an image more
            than twice the network input is cut into tiles).

    Learned attributes: ``latent_dim_``, ``explained_variance_ratio_`` (PCA spectrum, first
    ``latent_dim_`` entries), ``feature_shift_`` (C,) and ``feature_scale_`` (the input
    normalisation), ``training_loss_`` (mean loss per epoch), ``fit_seconds_``
    (wall time of feature sampling, PCA and training), ``training_vectors_`` (cached feature
    vectors trained on; ``None`` when trained on whole maps), ``threshold_``, ``score_stats_``.
    ``fit_seconds_`` and ``training_vectors_`` describe the fit and are not saved.
    """

    PRESETS = PRESETS
    PARAMETERS = {
        "explained_variance": params.interval(0, 1, low_open=True),
        "latent_dim": params.one_of(params.positive_int, None),
        "pca_samples": params.positive_int,
        "positions_per_image": params.one_of(params.positive_int, "auto", None),
        "epochs": params.one_of(params.positive_int, "auto"),
        "batch_size": params.positive_int,
        "learning_rate": params.interval(0, 1, low_open=True),
        "hidden": params.one_of(params.positive_int, "paper", "capped"),
        "normalise": params.boolean,
        "input_noise": params.non_negative,
        "pca_skip": params.boolean,
    }

    def __init__(
        self,
        preset: str = "cpu",
        *,
        explained_variance: float = 0.9,
        latent_dim: int | None = None,
        pca_samples: int = 8192,
        hidden: int | str | None = None,
        positions_per_image: int | str | None = None,
        epochs: int | str | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        normalise: bool | None = None,
        input_noise: float | None = None,
        pca_skip: bool | None = None,
        **features: Any,
    ) -> None:
        super().__init__(**features)
        self.preset = preset
        self.explained_variance = explained_variance
        self.latent_dim = latent_dim
        self.pca_samples = pca_samples
        self.hidden = hidden
        self.positions_per_image = positions_per_image
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.normalise = normalise
        self.input_noise = input_noise
        self.pca_skip = pca_skip

    def training_settings(self) -> dict[str, Any]:
        """The training arguments after the preset has filled in those left as ``None`` (:meth:`settings`)."""
        return self.settings()

    # ----------------------------------------------------------------- fitting

    def _fit(self, images: ImageDataset) -> None:
        settings = self.settings()
        with self._seeded() as rng:
            self._build_extractor(self.weights)
            per_image = self._positions_per_image(settings["positions_per_image"], len(images))
            started = time.perf_counter()
            vectors = self._sample_vectors(images, per_image, rng)
            self.fit_seconds_ = {"features": time.perf_counter() - started}
            pca_sample = self._gather_vectors(
                vectors, per_image, lambda total: rng.choice(total, size=min(self.pca_samples, total), replace=False))
            self.latent_dim_, self.explained_variance_ratio_, components = self._pca_latent_dim(pca_sample, settings["pca_skip"])
            mean, spread = self._normalisation(pca_sample)
            normalise = settings["normalise"]
            self._set_normalisation(mean if normalise else torch.zeros_like(mean), spread if normalise else 1.0)
            self.fit_seconds_["pca"] = time.perf_counter() - started - self.fit_seconds_["features"]
            hidden = self._hidden_width(settings["hidden"])
            skip = components[:, :self.latent_dim_].float() if settings["pca_skip"] else None
            centre = None if normalise else mean  # normalised inputs are centred already
            self.autoencoder_ = FeatureAutoencoder(
                self.extractor_.channels, self.latent_dim_, hidden, skip, centre).to(self.device_)
            self.training_vectors_ = None if settings["positions_per_image"] is None else distributed.total(len(vectors))
            if settings["positions_per_image"] is None:
                del vectors
                items, batches = len(images), self._map_batches(images, settings["batch_size"])
            else:
                items, batches = len(vectors), self._vector_batches(vectors, settings["batch_size"])
            epochs = self._epochs(settings["epochs"], math.ceil(distributed.total(items) / settings["batch_size"]))
            started = time.perf_counter()
            noise = settings["input_noise"] * spread / self.feature_scale_
            self.training_loss_ = self._train(batches, epochs, settings["learning_rate"], noise)
            self.fit_seconds_["train"] = time.perf_counter() - started

    def _positions_per_image(self, rule: int | str | None, images: int) -> int:
        """Positions sampled per image: for the cache (``rule`` a number or "auto") or, when
        training on whole maps (``None``), for the PCA only."""
        if rule is None:
            return math.ceil(self.pca_samples / distributed.total(images))
        return self._cache_per_image(rule, images)

    @staticmethod
    def _epochs(rule: int | str, batches_per_epoch: int) -> int:
        """Epochs to train: ``rule`` itself, or for "auto" the fewest giving ``TRAINING_STEPS`` steps."""
        return math.ceil(TRAINING_STEPS / batches_per_epoch) if rule == "auto" else int(rule)

    def _hidden_width(self, rule: int | str) -> int:
        paper = (self.extractor_.channels + 2 * self.latent_dim_) // 2
        if rule == "paper":
            return paper
        if rule == "capped":
            return min(paper, HIDDEN_CAP)
        return int(rule)

    def _pca_latent_dim(self, vectors: torch.Tensor, components_needed: bool) -> tuple[int, list[float], torch.Tensor | None]:
        """Smallest d whose principal components keep ``explained_variance`` of the variance
        (or ``latent_dim``), their variance ratios, and all principal components (C, C) when
        ``components_needed`` (the PCA is skipped when ``latent_dim`` is fixed and they are not)."""
        if self.latent_dim is not None and not components_needed:
            return int(self.latent_dim), [], None
        _, variances, components = principal_components(vectors)
        if self.latent_dim is not None:
            return min(int(self.latent_dim), components.shape[1]), [], components
        latent = latent_size(variances, self.explained_variance)
        return latent, (variances[:latent] / variances.sum()).tolist(), components

    @staticmethod
    def _normalisation(vectors: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The mean vector (C,) and the root mean channel variance s of ``vectors`` (n, C)."""
        data = vectors.double()
        return data.mean(0).float(), float(data.var(0).mean().sqrt().clamp_min(1e-12))

    def _set_normalisation(self, shift: torch.Tensor, scale: float) -> None:
        self.feature_shift_, self.feature_scale_ = shift.to(self.device_), float(scale)

    def _normalised(self, features: torch.Tensor) -> torch.Tensor:
        """Features (B, C, H, W) as the autoencoder sees them: ``(x - feature_shift_) / feature_scale_``."""
        return (features - self.feature_shift_[:, None, None]) / self.feature_scale_

    def _vector_batches(self, vectors: torch.Tensor, batch_size: int) -> Iterator[Iterator[torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed + distributed.rank())

        def one_epoch() -> Iterator[torch.Tensor]:
            order = torch.randperm(len(vectors), generator=generator)
            for start in range(0, len(vectors), batch_size):
                rows = order[start:start + batch_size]
                if len(rows) > 1:
                    yield vectors[rows].to(self.device_)[:, :, None, None]

        while True:
            yield one_epoch()

    def _map_batches(self, images: ImageDataset, batch_size: int) -> Iterator[Iterator[torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed + distributed.rank())
        while True:
            order = torch.randperm(len(images), generator=generator).numpy()
            yield self._feature_batches(images.subset(order), None, batch_size)

    def _train(self, epochs_of_batches: Iterator[Iterator[torch.Tensor]], epochs: int, learning_rate: float,
               noise: float) -> list[float]:
        """Adam on the MSE between the clean normalised features and the reconstruction of the
        features plus Gaussian noise of std ``noise`` (in the autoencoder's input units); mean loss per epoch."""
        if distributed.rank():  # other noise on each process; rank 0 keeps the model's seed
            torch.manual_seed(self.seed + distributed.rank())

        def loss(autoencoder: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
            features = self._normalised(features)
            noisy = features + noise * torch.randn_like(features) if noise else features
            return F.mse_loss(autoencoder(noisy), features)

        return train("DFR", self.autoencoder_, epochs, lambda epoch: next(epochs_of_batches), loss,
                     learning_rate=learning_rate)

    # ----------------------------------------------------------------- inference

    def _position_scores(self, features: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error over channels of the normalised features: (B, C, s, s) → (B, s, s)."""
        self.autoencoder_.eval()
        features = self._normalised(features)
        return (self.autoencoder_(features) - features).pow_(2).mean(1)

    # ----------------------------------------------------------------- persistence

    def _head_state(self) -> dict[str, Any]:
        return {
            "autoencoder": {k: v.cpu() for k, v in self.autoencoder_.state_dict().items()},
            "latent_dim": self.latent_dim_,
            "feature_shift": self.feature_shift_.cpu(),
            "feature_scale": self.feature_scale_,
            "hidden": self.autoencoder_.encoder[0].out_channels,
            "explained_variance_ratio": list(self.explained_variance_ratio_),
            "training_loss": list(self.training_loss_),
        }

    def _load_head_state(self, state: dict[str, Any]) -> None:
        self.latent_dim_ = int(state["latent_dim"])
        weights = state["autoencoder"]
        self.autoencoder_ = FeatureAutoencoder(
            self.extractor_.channels, self.latent_dim_, int(state["hidden"]), weights.get("skip"), weights.get("skip_centre"))
        self.autoencoder_.load_state_dict(state["autoencoder"])
        self.autoencoder_.to(self.device_).eval()
        self._set_normalisation(state["feature_shift"].float(), float(state["feature_scale"]))
        self.explained_variance_ratio_ = list(state["explained_variance_ratio"])
        self.training_loss_ = list(state["training_loss"])
