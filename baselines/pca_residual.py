"""PCA residual: the linear, closed-form counterpart of DFR's autoencoder on the same features."""
from __future__ import annotations

from typing import Any

import torch

from dfr.api import params
from dfr.data.datasets import ImageDataset
from dfr.models.feature_model import (
    RegionalFeatureModel,
    latent_size,
    principal_components,
)


class PCAResidual(RegionalFeatureModel):
    """Anomaly map = squared distance of each regional feature vector from the PCA subspace.

    Fits the mean and the leading ``d`` principal components of cached training feature
    vectors (``d`` by DFR's rule: the fewest components keeping ``explained_variance``, or
    ``latent_dim``); a position's score is ``mean over channels of (r²)`` with ``r = (x - μ) -
    V Vᵀ (x - μ)``, the reconstruction error of the best linear autoencoder with latent size
    ``d``, in the same unit as DFR's map. The map is resized bilinearly to the input's size.

    Args:
        features: ``backbone``, ``weights``, ``layers``, ``image_size``, ``reflect_padding``,
            ``official_border``, ``scoring``, ``seed``, ``device``, as for :class:`dfr.DFR`.
        explained_variance: PCA variance fraction that fixes the latent size.
        latent_dim: fix the latent size instead.
        positions_per_image: positions sampled per training image for the PCA, or ``"auto"``
            (51 200 vectors in all, as DFR's cpu preset caches).

    Learned attributes: ``mean_`` (C,), ``components_`` (C, d), ``latent_dim_``,
    ``explained_variance_ratio_`` (first ``d`` entries), ``threshold_``, ``score_stats_``.
    """

    PARAMETERS = {
        "explained_variance": params.interval(0, 1, low_open=True),
        "latent_dim": params.one_of(params.positive_int, None),
        "positions_per_image": params.one_of(params.positive_int, "auto"),
    }

    def __init__(
        self,
        *,
        explained_variance: float = 0.9,
        latent_dim: int | None = None,
        positions_per_image: int | str = "auto",
        **features: Any,
    ) -> None:
        super().__init__(**features)
        self.explained_variance = explained_variance
        self.latent_dim = latent_dim
        self.positions_per_image = positions_per_image

    def _fit(self, images: ImageDataset) -> None:
        with self._seeded() as rng:
            self._build_extractor(self.weights)
            per_image = self._cache_per_image(self.positions_per_image, len(images))
            vectors = self._gather_vectors(self._sample_vectors(images, per_image, rng), per_image)
        mean, variances, components = principal_components(vectors)
        latent = latent_size(variances, self.explained_variance) if self.latent_dim is None else self.latent_dim
        latent = min(latent, len(variances))
        self._set_subspace(mean.float(), components[:, :latent].float().contiguous())
        self.explained_variance_ratio_ = (variances[:latent] / variances.sum()).tolist()

    def _set_subspace(self, mean: torch.Tensor, components: torch.Tensor) -> None:
        self.mean_, self.components_ = mean.to(self.device_), components.to(self.device_)
        self.latent_dim_ = components.shape[1]

    def _position_scores(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, s, s) → (B, s, s): mean squared residual over channels."""
        centred = features.permute(0, 2, 3, 1) - self.mean_
        residual = centred - (centred @ self.components_) @ self.components_.T
        return residual.pow_(2).mean(-1)

    def _head_state(self) -> dict[str, Any]:
        return {
            "mean": self.mean_.cpu(), "components": self.components_.cpu(),
            "explained_variance_ratio": list(self.explained_variance_ratio_),
        }

    def _load_head_state(self, state: dict[str, Any]) -> None:
        self._set_subspace(state["mean"].float(), state["components"].float())
        self.explained_variance_ratio_ = list(state["explained_variance_ratio"])
