"""From raw maps to what a threshold and a heatmap need: smoothing, the normal level per
position, the pixel threshold, image scores, statistics of normal pixels, the colour scale."""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np

from dfr import distributed
from dfr.scoring.order_statistics import ValueStore
from dfr.scoring.settings import IMAGE_SCORES, ScoringSettings

#: :func:`position_scale`: Gaussian smoothing of the per-position mean, as a fraction of the
#: shorter side, and the quantile of its values it is raised to (chosen on PoolAE's maps of
#: the validation split of the generated pool data; docs/boxes.md).
POSITION_SMOOTHING = 0.02
POSITION_FLOOR_QUANTILE = 0.25

def smooth(anomaly_map: np.ndarray, sigma: float) -> np.ndarray:
    """float32 map (H, W) convolved with a Gaussian of ``sigma`` pixels (reflected borders); 0 returns it as is."""
    if sigma == 0:
        return anomaly_map
    return cv2.GaussianBlur(np.asarray(anomaly_map, np.float32), (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)


def position_scale(maps: list[np.ndarray], regions: list[np.ndarray] | None = None) -> np.ndarray:
    """Normal map level per position, float32 (H, W), from the maps (H, W) of normal images.

    The mean over the maps of each position inside its image's region (bool (H, W); whole
    images without ``regions``), smoothed by a Gaussian of ``POSITION_SMOOTHING`` of the
    shorter side (normalised by the region coverage, so borders are not pulled down), then
    raised to at least the ``POSITION_FLOOR_QUANTILE`` quantile of its positive values so that
    calm places are not amplified. Positions outside every region get that floor too; maps
    that are zero everywhere give a scale of 1. Over many maps, add them in parts with
    :func:`position_sums` and finish with :func:`scale_from_sums`.
    """
    return scale_from_sums(*position_sums(maps, regions))


def position_sums(
    maps: list[np.ndarray], regions: list[np.ndarray] | None = None, sums: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``sums`` (region-weighted total, coverage; float64 (H, W)) with ``maps`` added; ``None`` starts at zero."""
    shapes = sorted({m.shape for m in maps} | ({sums[0].shape} if sums is not None else set()))
    if len(shapes) != 1:
        raise ValueError(f"normalise_positions needs training images of one size (a fixed camera), got map sizes {shapes}")
    total, covered = (np.zeros(shapes[0]), np.zeros(shapes[0])) if sums is None else sums
    for index, anomaly_map in enumerate(maps):
        weight = np.ones(shapes[0]) if regions is None else regions[index].astype(np.float64)
        total += anomaly_map * weight
        covered += weight
    return total, covered


def scale_from_sums(total: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """:func:`position_scale` from the sums of :func:`position_sums`."""
    sigma = POSITION_SMOOTHING * min(total.shape)
    total, covered = smooth(total.astype(np.float32), sigma), smooth(covered.astype(np.float32), sigma)
    inside = covered > 1e-3
    if not inside.any():
        raise ValueError("normalise_positions: the training maps cover no position (empty regions)")
    mean = np.where(inside, total / np.maximum(covered, 1e-3), 0.0)
    positive = mean[inside & (mean > 0)]
    floor = float(np.quantile(positive, POSITION_FLOOR_QUANTILE)) if positive.size else 1.0
    return np.maximum(mean, floor).astype(np.float32)


def normalise_positions(anomaly_map: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``anomaly_map / scale``, float32 (H, W); a scale of another size is resized to the map's."""
    if scale.shape != anomaly_map.shape:
        scale = cv2.resize(scale, anomaly_map.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return (anomaly_map / scale).astype(np.float32)


def fit_threshold(normal_pixels: list[np.ndarray] | ValueStore, target_fpr: float) -> float:
    """Smallest pixel threshold that flags at most ``target_fpr`` of the given normal pixels.

    ``normal_pixels``: maps or pixel arrays, or a :class:`~dfr.scoring.order_statistics.ValueStore`
    of them (all ranks' pixels under torch.distributed). A pixel is flagged when its value is
    strictly above the threshold, so on these pixels the flagged fraction is ``<= target_fpr``
    (less only where values tie).
    """
    if not 0.0 < target_fpr < 1.0:
        raise ValueError(f"target_fpr must lie in (0, 1), got {target_fpr}")
    with _as_store(normal_pixels) as store:
        total = store.total_count()
        return store.order_statistic(total - int(np.floor(target_fpr * total)) - 1)


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


def score_statistics(normal_pixels: list[np.ndarray] | ValueStore, scores: np.ndarray | None = None) -> dict[str, float]:
    """Statistics of held-out normal pixels (maps, pixel arrays or a
    :class:`~dfr.scoring.order_statistics.ValueStore`) and their image ``scores`` (default: the
    maxima of the given maps), stored in the model and used for heatmap scaling."""
    if scores is None and isinstance(normal_pixels, ValueStore):
        raise ValueError("score_statistics needs scores= with a ValueStore of pixels")
    if scores is None:
        scores = image_scores(normal_pixels)
    scores = np.asarray(scores, np.float64)
    with _as_store(normal_pixels) as store:
        return {
            "pixel_median": store.quantile(0.5),
            "pixel_q99": store.quantile(0.99),
            "pixel_max": store.maximum(),
            "image_score_mean": float(scores.mean()),
            "image_score_std": float(scores.std()),
            "image_score_max": float(scores.max()),
            "images": float(len(scores)),
        }


@contextmanager
def _as_store(pixels: list[np.ndarray] | ValueStore) -> Iterator[ValueStore]:
    """``pixels`` as a :class:`ValueStore`: itself (all processes' values), or a temporary one
    holding the arrays (this process's only)."""
    if isinstance(pixels, ValueStore):
        yield pixels
        return
    with distributed.local(), ValueStore() as store:  # the caller's arrays: this process's own statistics
        for values in pixels:
            store.append(values)
        yield store


def heatmap_range(stats: dict[str, float], threshold: float) -> tuple[float, float]:
    """Dataset-wide colour scale: the normal median at the bottom, the threshold mid-scale."""
    low = stats["pixel_median"]
    return low, low + 2.0 * max(threshold - low, 1e-12)
