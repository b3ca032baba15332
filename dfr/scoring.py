"""Scoring shared by all models: map smoothing, pixel threshold, image scores, masks, boxes, heatmap scale.

Every model takes one :class:`ScoringSettings` (``scoring=``): how its maps are post-processed
and turned into scores, masks and boxes. The settings are stored in the model file.

For fixed cameras, ``normalise_positions`` divides every map by the normal level of the map at
each position (:func:`position_scale`), so that places that never reconstruct well (lane
ropes, edges) do not outshine the objects.

From map to boxes (:func:`detect`), the one box pipeline of every model: the smoothed map is
restricted to an optional region of interest, thresholded at the fitted threshold, cleaned by
a morphological opening and closing, kept by hysteresis (only components holding a seed above
a higher level), cut back to each component's pixels near its own peak, cut into
8-connected components of a minimum area,
boxed, and the boxes that overlap or nearly touch are merged, then non-maximum suppressed.
"""
from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from dfr import distributed
from dfr.metrics import box_iou
from dfr.order_statistics import ValueStore

IMAGE_SCORES = ("max", "mean", "top_mean")
#: :func:`position_scale`: Gaussian smoothing of the per-position mean, as a fraction of the
#: shorter side, and the quantile of its values it is raised to (chosen on PoolAE's maps of
#: the validation split of the generated pool data; docs/boxes.md).
POSITION_SMOOTHING = 0.02
POSITION_FLOOR_QUANTILE = 0.25


@dataclass(frozen=True)
class ScoringSettings:
    """How a model turns raw anomaly maps into maps, scores, masks and boxes.

    Args:
        target_fpr: fraction of held-out normal pixels allowed above the pixel threshold.
        validation_fraction: share of the training data held out for the threshold when
            ``fit`` gets no ``validation=``.
        smoothing_sigma: standard deviation, in pixels of the input image, of the Gaussian
            applied to every map before anything else; 0 turns smoothing off.
        normalise_positions: divide every smoothed map by the normal level at each position,
            the mean of the training images' own maps (:func:`position_scale`); for fixed
            cameras, where some places (lane ropes, edges) always reconstruct worse than
            others. Costs one more pass over the training images in ``fit``; training images
            must share one size.
        image_score: ``"max"`` (the map maximum), ``"mean"`` (the map mean) or ``"top_mean"``
            (the mean of the ``top_fraction`` highest pixels) of the smoothed map. Video
            models keep their own frame score.
        top_fraction: share of pixels averaged by ``"top_mean"``, in (0, 1].
        seed_ratio: hysteresis: a mask component is kept only if some pixel in it exceeds
            ``median + seed_ratio * (threshold - median)`` (median of held-out normal pixels);
            1 keeps every component.
        opening, closing: diameters of the disks of a morphological opening (removes specks
            and thin lines) and then closing (joins nearby fragments) of the mask, as a
            fraction of the image's shorter side (rounded up to an odd number of pixels);
            below 2 pixels the step is skipped.
        peak_fraction: each component is cut back to its pixels above ``median + peak_fraction
            * (peak - median)``, its own peak's level (which can split it in two); boxes then
            follow the object, not the blur around it. 0 keeps the component whole.
        min_box_area: smallest connected component that becomes a box, as a fraction of the
            image's area (at least one pixel).
        merge_gap: boxes that overlap or lie at most this far apart (fraction of the shorter
            side, along both axes) merge into their union, repeatedly; ``None`` never merges.
        nms_iou: non-maximum suppression: a box whose IoU with a higher-scoring box exceeds
            this is dropped; 1 keeps all.

    Settings from ``seed_ratio`` on (the box settings) and ``image_score``/``top_fraction``
    may be changed after fitting (``predict(..., scoring={...})``); the others fix the
    threshold and need a refit.
    """

    target_fpr: float = 0.005
    validation_fraction: float = 0.2
    smoothing_sigma: float = 4.0
    normalise_positions: bool = False
    image_score: str = "top_mean"
    top_fraction: float = 0.01
    seed_ratio: float = 2.0
    opening: float = 0.0
    closing: float = 0.01
    peak_fraction: float = 0.5
    min_box_area: float = 0.0005
    merge_gap: float | None = 0.01
    nms_iou: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.target_fpr < 1.0:
            raise ValueError(f"target_fpr must lie in (0, 1), got {self.target_fpr}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must lie in (0, 1), got {self.validation_fraction}")
        if not (isinstance(self.smoothing_sigma, (int, float)) and self.smoothing_sigma >= 0):
            raise ValueError(f"smoothing_sigma must be a number of pixels >= 0 (0: off), got {self.smoothing_sigma!r}")
        if not isinstance(self.normalise_positions, bool):
            raise ValueError(f"normalise_positions must be True or False, got {self.normalise_positions!r}")
        if self.image_score not in IMAGE_SCORES:
            raise ValueError(f"image_score must be one of {IMAGE_SCORES}, got {self.image_score!r}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must lie in (0, 1], got {self.top_fraction}")
        if not _number(self.seed_ratio) or self.seed_ratio < 1:
            raise ValueError(f"seed_ratio must be a number >= 1 (1: no hysteresis), got {self.seed_ratio!r}")
        if not _number(self.peak_fraction) or not 0 <= self.peak_fraction < 1:
            raise ValueError(f"peak_fraction must lie in [0, 1) (0: no peak cut), got {self.peak_fraction!r}")
        for name in ("opening", "closing", "min_box_area"):
            value = getattr(self, name)
            if not _number(value) or not 0 <= value < 1:
                raise ValueError(f"{name} must be a fraction of the image in [0, 1), got {value!r}")
        if self.merge_gap is not None and (not _number(self.merge_gap) or not 0 <= self.merge_gap < 1):
            raise ValueError(f"merge_gap must be a fraction of the image in [0, 1) or None (no merging), "
                             f"got {self.merge_gap!r}")
        if not _number(self.nms_iou) or not 0 < self.nms_iou <= 1:
            raise ValueError(f"nms_iou must lie in (0, 1] (1: no suppression), got {self.nms_iou!r}")

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

    def replace(self, changes: "ScoringSettings | dict[str, Any] | None") -> "ScoringSettings":
        """These settings with the fields in ``changes`` replaced; only the fields that
        :data:`AFTER_FIT` lists may change (the others fixed the fitted threshold)."""
        if changes is None:
            return self
        changes = changes.to_dict() if isinstance(changes, ScoringSettings) else dict(changes)
        changed = {name for name, value in changes.items() if getattr(self, name, object()) != value}
        fixed = sorted(changed - set(AFTER_FIT))
        if fixed:
            unknown = sorted(set(fixed) - set(self.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown scoring settings {unknown}; known: {sorted(self.__dataclass_fields__)}")
            raise ValueError(f"scoring settings {fixed} were fixed when the threshold was fitted; refit to change "
                             f"them (after fitting only {list(AFTER_FIT)} may change)")
        return dataclasses.replace(self, **changes)


#: Scoring settings that may change after fitting: they do not enter the fitted threshold.
AFTER_FIT = ("image_score", "top_fraction", "seed_ratio", "opening", "closing", "peak_fraction", "min_box_area",
             "merge_gap", "nms_iou")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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

    ``normal_pixels``: maps or pixel arrays, or a :class:`~dfr.order_statistics.ValueStore`
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
    :class:`~dfr.order_statistics.ValueStore`) and their image ``scores`` (default: the
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
