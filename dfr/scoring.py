"""Scoring shared by all models: pixel threshold, image scores, masks, boxes, heatmap scale."""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage


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


def image_scores(maps: list[np.ndarray]) -> np.ndarray:
    """One score per map: its maximum (float64, shape (N,))."""
    return np.array([float(np.max(m)) for m in maps])


def score_statistics(normal_maps: list[np.ndarray]) -> dict[str, float]:
    """Statistics of held-out normal maps, stored in the model and used for heatmap scaling."""
    pixels = np.concatenate([np.ravel(m) for m in normal_maps])
    scores = image_scores(normal_maps)
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
