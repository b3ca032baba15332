"""Patch memory bank (PatchCore-style): nearest-neighbour distance to a coreset of normal feature vectors."""
from __future__ import annotations

from typing import Any

import torch

from dfr.api import params
from dfr.data.datasets import ImageDataset
from dfr.models.feature_model import RegionalFeatureModel

#: Bank rows per block when scoring a batch of feature maps (all its positions at once, so
#: that the exported graph keeps a free batch axis): batch x positions x 1024 floats at a time.
SCORING_BANK_CHUNK = 1024


def nearest_map(features: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of each position's vector of ``features`` (B, C, s, s) to its nearest
    bank row (k, C): (B, s, s), the bank taken ``SCORING_BANK_CHUNK`` rows at a time."""
    batch, channels, height, width = features.shape
    queries = features.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
    norms = queries.pow(2).sum(-1, keepdim=True)
    best = None
    for first in range(0, len(bank), SCORING_BANK_CHUNK):
        block = bank[first:first + SCORING_BANK_CHUNK]
        squared = (norms + block.pow(2).sum(1) - 2.0 * queries @ block.T).amin(-1)
        best = squared if best is None else torch.minimum(best, squared)
    return best.clamp_min(0).sqrt().reshape(batch, height, width)


def greedy_coreset(vectors: torch.Tensor, count: int, *, projection_dim: int | None = 128, seed: int = 0) -> torch.Tensor:
    """Indices (count,) of a greedy k-centre coreset of ``vectors`` (n, C).

    Starts from a seeded random vector, then repeatedly adds the vector farthest from those
    chosen so far, which keeps the largest distance of any vector to its nearest chosen one
    within twice the optimum. Distances are measured after a seeded Gaussian random
    projection to ``projection_dim`` dimensions (``None``: the original space), which
    preserves them approximately and makes each step cheaper.
    """
    if not 1 <= count <= len(vectors):
        raise ValueError(f"coreset size must lie in 1 … {len(vectors)}, got {count}")
    generator = torch.Generator().manual_seed(seed)
    points = vectors.float()
    if projection_dim is not None and projection_dim < points.shape[1]:
        projection = torch.randn(points.shape[1], projection_dim, generator=generator) / projection_dim ** 0.5
        points = points @ projection.to(points.device)
    norms = points.pow(2).sum(1)
    chosen = torch.empty(count, dtype=torch.long)
    chosen[0] = int(torch.randint(len(points), (1,), generator=generator))
    nearest = torch.full_like(norms, float("inf"))
    for index in range(count):
        if index:
            chosen[index] = int(torch.argmax(nearest))
        centre = points[chosen[index]]
        torch.minimum(nearest, torch.addmv(norms + norms[chosen[index]], points, centre, alpha=-2.0), out=nearest)
    return chosen


class PatchMemoryBank(RegionalFeatureModel):
    """Anomaly map = distance of each regional feature vector to its nearest neighbour in a memory bank.

    Fitting samples feature vectors of the training images (as DFR's cpu preset caches them)
    and keeps a greedy k-centre coreset of ``coreset_fraction`` of them (PatchCore's
    subsampling) as the bank. A position's score is the Euclidean distance of its vector to
    the nearest bank vector, computed in blocks so memory stays bounded whatever the bank
    size. The map is resized bilinearly to the input's size.

    Args:
        features: ``backbone``, ``weights``, ``layers``, ``image_size``, ``reflect_padding``,
            ``official_border``, ``scoring``, ``seed``, ``device``, as for :class:`dfr.DFR`.
        positions_per_image: positions sampled per training image, or ``"auto"`` (51 200
            vectors in all).
        coreset_fraction: share of the sampled vectors kept in the bank, in (0, 1]; 1 keeps all.
            The default 5 % scored as well as 10 % on the validation textures at half the
            search cost (docs/feature_heads.md).
        projection_dim: dimensions of the random projection used to pick the coreset
            (``None``: none).

    Learned attributes: ``bank_`` (k, C) float32, ``threshold_``, ``score_stats_``.
    """

    PARAMETERS = {
        "positions_per_image": params.one_of(params.positive_int, "auto"),
        "coreset_fraction": params.interval(0, 1, low_open=True),
        "projection_dim": params.one_of(params.positive_int, None),
    }

    def __init__(
        self,
        *,
        positions_per_image: int | str = "auto",
        coreset_fraction: float = 0.05,
        projection_dim: int | None = 128,
        **features: Any,
    ) -> None:
        super().__init__(**features)
        self.positions_per_image = positions_per_image
        self.coreset_fraction = coreset_fraction
        self.projection_dim = projection_dim

    def _fit(self, images: ImageDataset) -> None:
        with self._seeded() as rng:
            self._build_extractor(self.weights)
            per_image = self._cache_per_image(self.positions_per_image, len(images))
            vectors = self._gather_vectors(self._sample_vectors(images, per_image, rng), per_image)
        count = max(1, round(self.coreset_fraction * len(vectors)))
        chosen = greedy_coreset(vectors.to(self.device_), count, projection_dim=self.projection_dim, seed=self.seed)
        self.bank_ = vectors[chosen].contiguous().to(self.device_)

    def _position_scores(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, s, s) → (B, s, s): distance to the nearest bank vector."""
        return nearest_map(features, self.bank_)

    def _head_state(self) -> dict[str, Any]:
        return {"bank": self.bank_.cpu()}

    def _load_head_state(self, state: dict[str, Any]) -> None:
        self.bank_ = state["bank"].float().to(self.device_)
