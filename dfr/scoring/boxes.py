"""The one box pipeline of every model (:func:`detect`): from a smoothed map and a threshold to a
mask and boxes."""
from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from dfr.metrics import box_iou
from dfr.scoring.settings import ScoringSettings


def component_peaks(anomaly_map: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """float64 (count,): the map's maximum over each label of ``labels`` (int (H, W), 0 =
    background, whose entry is -inf), from the labelled pixels only."""
    peaks = np.full(count, -np.inf)
    labelled = labels > 0
    np.maximum.at(peaks, labels[labelled], anomaly_map[labelled])
    return peaks


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
    peaks = component_peaks(anomaly_map, labels, count)[keep]
    boxes = np.array(
        [
            [
                stats[label, cv2.CC_STAT_LEFT],
                stats[label, cv2.CC_STAT_TOP],
                stats[label, cv2.CC_STAT_LEFT] + stats[label, cv2.CC_STAT_WIDTH],
                stats[label, cv2.CC_STAT_TOP] + stats[label, cv2.CC_STAT_HEIGHT],
                peak,
            ]
            for label, peak in zip(keep, peaks)
        ],
        dtype=np.float64,
    )
    return _by_score(boxes)


def detection_mask(
    anomaly_map: np.ndarray, threshold: float, settings: ScoringSettings, *, floor: float = 0.0,
    region: np.ndarray | None = None,
) -> np.ndarray:
    """bool (H, W): ``map > threshold`` inside ``region`` (bool (H, W), optional), opened,
    closed, kept by hysteresis and cut back to each component's peak level per ``settings``;
    ``floor`` is the normal pixel median."""
    mask = anomaly_map > threshold
    if region is not None:
        mask &= region
    for operation, fraction in ((cv2.MORPH_OPEN, settings.opening), (cv2.MORPH_CLOSE, settings.closing)):
        side = round(fraction * min(mask.shape))
        if side >= 2:
            side += 1 - side % 2  # odd, so that the disk is centred on its pixel
            disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
            mask = cv2.morphologyEx(mask.astype(np.uint8), operation, disk).astype(bool)
    if region is not None:
        mask &= region
    if settings.seed_ratio > 1 and mask.any():
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        seeded = np.zeros(count, dtype=bool)
        seeded[labels[mask & (anomaly_map > floor + settings.seed_ratio * (threshold - floor))]] = True
        seeded[0] = False
        mask = seeded[labels]
    if settings.peak_fraction > 0 and mask.any():
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        peaks = component_peaks(anomaly_map, labels, count)
        mask &= anomaly_map > floor + settings.peak_fraction * (peaks[labels] - floor)
    return mask


def merge_boxes(boxes: np.ndarray, gap: float) -> np.ndarray:
    """Boxes (k, 5) with every group that overlaps or lies at most ``gap`` pixels apart (along
    both axes) replaced by its union, scored by its best score; sorted by score.

    Grouping is transitive and repeated until no union comes within ``gap`` of another.
    """
    while len(boxes) > 1:
        apart_x = np.maximum(boxes[:, None, 0] - boxes[None, :, 2], boxes[None, :, 0] - boxes[:, None, 2])
        apart_y = np.maximum(boxes[:, None, 1] - boxes[None, :, 3], boxes[None, :, 1] - boxes[:, None, 3])
        count, group = connected_components(csr_matrix((apart_x <= gap) & (apart_y <= gap)), directed=False)
        if count == len(boxes):
            break
        boxes = np.array([
            [*boxes[group == g, :2].min(0), *boxes[group == g, 2:].max(0)] for g in range(count)
        ], dtype=np.float64)
    return _by_score(np.asarray(boxes, dtype=np.float64).reshape(-1, 5))


def non_maximum_suppression(boxes: np.ndarray, iou: float) -> np.ndarray:
    """Boxes (k, 5) without those whose IoU with a higher-scoring kept box exceeds ``iou``."""
    boxes = _by_score(boxes)
    keep: list[int] = []
    for index in range(len(boxes)):
        if not keep or box_iou(boxes[index], boxes[keep]).max() <= iou:
            keep.append(index)
    return boxes[keep]


def detect(
    anomaly_map: np.ndarray, threshold: float, settings: ScoringSettings, *, floor: float = 0.0,
    region: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The box pipeline: (mask bool (H, W), boxes float (k, 5) ``x0, y0, x1, y1, score``).

    ``anomaly_map`` is the smoothed map; the mask is :func:`detection_mask`; boxes are its
    components of at least ``min_box_area`` of the image (score: the map's maximum over the
    component), merged (``merge_gap``) and suppressed (``nms_iou``), highest score first.
    """
    mask = detection_mask(anomaly_map, threshold, settings, floor=floor, region=region)
    boxes = boxes_from_mask(mask, anomaly_map, max(1, math.ceil(settings.min_box_area * mask.size)))
    if settings.merge_gap is not None:
        boxes = merge_boxes(boxes, settings.merge_gap * min(mask.shape))
    return mask, non_maximum_suppression(boxes, settings.nms_iou)


def _by_score(boxes: np.ndarray) -> np.ndarray:
    return boxes[np.argsort(-boxes[:, 4], kind="stable")]
