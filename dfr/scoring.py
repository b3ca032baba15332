"""Scoring shared by all models: map smoothing, pixel threshold, image scores, masks, boxes, heatmap scale.

Every model takes one :class:`ScoringSettings` (``scoring=``): how its maps are post-processed
and turned into scores, masks and boxes. The settings are stored in the model file.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

IMAGE_SCORES = ("max", "mean", "top_mean")


@dataclass(frozen=True)
class ScoringSettings:
    """How a model turns raw anomaly maps into maps, scores, masks and boxes.

    Args:
        target_fpr: fraction of held-out normal pixels allowed above the pixel threshold.
        validation_fraction: share of the training data held out for the threshold when
            ``fit`` gets no ``validation=``.
        smoothing_sigma: standard deviation, in pixels of the input image, of the Gaussian
            applied to every map before anything else; 0 turns smoothing off.
        image_score: ``"max"`` (the map maximum), ``"mean"`` (the map mean) or ``"top_mean"``
            (the mean of the ``top_fraction`` highest pixels) of the smoothed map. Video
            models keep their own frame score.
        top_fraction: share of pixels averaged by ``"top_mean"``, in (0, 1].
        min_box_area: smallest connected component, in pixels, that becomes a box.
    """

    target_fpr: float = 0.005
    validation_fraction: float = 0.2
    smoothing_sigma: float = 4.0
    image_score: str = "top_mean"
    top_fraction: float = 0.01
    min_box_area: int = 16

    def __post_init__(self) -> None:
        if not 0.0 < self.target_fpr < 1.0:
            raise ValueError(f"target_fpr must lie in (0, 1), got {self.target_fpr}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must lie in (0, 1), got {self.validation_fraction}")
        if not (isinstance(self.smoothing_sigma, (int, float)) and self.smoothing_sigma >= 0):
            raise ValueError(f"smoothing_sigma must be a number of pixels >= 0 (0: off), got {self.smoothing_sigma!r}")
        if self.image_score not in IMAGE_SCORES:
            raise ValueError(f"image_score must be one of {IMAGE_SCORES}, got {self.image_score!r}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must lie in (0, 1], got {self.top_fraction}")
        if isinstance(self.min_box_area, bool) or not isinstance(self.min_box_area, int) or self.min_box_area < 1:
            raise ValueError(f"min_box_area must be a positive number of pixels, got {self.min_box_area!r}")

    @classmethod
    def coerce(cls, value: "ScoringSettings | dict[str, Any] | None") -> "ScoringSettings":
        """``value`` itself, the defaults for ``None``, or the settings a dict of fields names."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown scoring settings {unknown}; known: {sorted(cls.__dataclass_fields__)}")
            return cls(**value)
        raise TypeError(f"scoring must be a ScoringSettings, a dict or None, got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as stored in model files."""
        return asdict(self)


def smooth(anomaly_map: np.ndarray, sigma: float) -> np.ndarray:
    """float32 map (H, W) convolved with a Gaussian of ``sigma`` pixels (reflected borders); 0 returns it as is."""
    if sigma == 0:
        return anomaly_map
    return cv2.GaussianBlur(np.asarray(anomaly_map, np.float32), (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)


def fit_threshold(normal_maps: list[np.ndarray], target_fpr: float) -> float:
    """Smallest pixel threshold that flags at most ``target_fpr`` of the given normal pixels.

    A pixel is flagged when its value is strictly above the threshold, so on these maps the
    flagged fraction is ``<= target_fpr`` (less only where values tie).
    """
    if not 0.0 < target_fpr < 1.0:
        raise ValueError(f"target_fpr must lie in (0, 1), got {target_fpr}")
    pixels = np.concatenate([np.ravel(m) for m in normal_maps]).astype(np.float64)
    allowed = int(np.floor(target_fpr * pixels.size))
    kth = pixels.size - allowed - 1
    return float(np.partition(pixels, kth)[kth])


def image_score(anomaly_map: np.ndarray, kind: str = "max", top_fraction: float = 0.01) -> float:
    """One map's score: its ``"max"``, its ``"mean"``, or the ``"top_mean"`` of its
    ``ceil(top_fraction * pixels)`` highest pixels."""
    values = np.ravel(anomaly_map)
    if kind == "max":
        return float(values.max())
    if kind == "mean":
        return float(values.mean(dtype=np.float64))
    if kind == "top_mean":
        count = max(1, math.ceil(top_fraction * values.size))
        return float(np.partition(values, values.size - count)[values.size - count:].mean(dtype=np.float64))
    raise ValueError(f"image score must be one of {IMAGE_SCORES}, got {kind!r}")


def image_scores(maps: list[np.ndarray], settings: ScoringSettings | None = None) -> np.ndarray:
    """One score per map (float64, shape (N,)), by ``settings.image_score`` (default: the maximum)."""
    kind, fraction = ("max", 1.0) if settings is None else (settings.image_score, settings.top_fraction)
    return np.array([image_score(m, kind, fraction) for m in maps])


def score_statistics(normal_maps: list[np.ndarray], scores: np.ndarray | None = None) -> dict[str, float]:
    """Statistics of held-out normal maps and their image ``scores`` (default: map maxima),
    stored in the model and used for heatmap scaling."""
    pixels = np.concatenate([np.ravel(m) for m in normal_maps])
    scores = image_scores(normal_maps) if scores is None else np.asarray(scores, np.float64)
    return {
        "pixel_median": float(np.median(pixels)),
        "pixel_q99": float(np.quantile(pixels, 0.99)),
        "pixel_max": float(pixels.max()),
        "image_score_mean": float(scores.mean()),
        "image_score_std": float(scores.std()),
        "image_score_max": float(scores.max()),
        "images": float(len(normal_maps)),
    }


def heatmap_range(stats: dict[str, float], threshold: float) -> tuple[float, float]:
    """Dataset-wide colour scale: the normal median at the bottom, the threshold mid-scale."""
    low = stats["pixel_median"]
    return low, low + 2.0 * max(threshold - low, 1e-12)


def boxes_from_mask(mask: np.ndarray, anomaly_map: np.ndarray, min_area: int) -> np.ndarray:
    """Boxes around the 8-connected components of ``mask`` with at least ``min_area`` pixels.

    Returns a float array (k, 5): ``x0, y0, x1, y1, score`` in pixels, ``x1``/``y1``
    exclusive, the score being the map maximum over the component, sorted by score (highest
    first).
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = [label for label in range(1, count) if stats[label, cv2.CC_STAT_AREA] >= min_area]
    if not keep:
        return np.zeros((0, 5), dtype=np.float64)
    peaks = ndimage.maximum(anomaly_map, labels, keep)
    boxes = np.array(
        [
            [
                stats[label, cv2.CC_STAT_LEFT],
                stats[label, cv2.CC_STAT_TOP],
                stats[label, cv2.CC_STAT_LEFT] + stats[label, cv2.CC_STAT_WIDTH],
                stats[label, cv2.CC_STAT_TOP] + stats[label, cv2.CC_STAT_HEIGHT],
                peak,
            ]
            for label, peak in zip(keep, np.atleast_1d(peaks))
        ],
        dtype=np.float64,
    )
    return boxes[np.argsort(-boxes[:, 4], kind="stable")]
