"""Evaluation metrics: PRO-AUC, pixel/image ROC-AUC, average precision, video frame AUC/EER, boxes.

Every definition, its edge cases and the variants in the literature that give other numbers are
described in ``docs/metrics.md``. Conventions shared by all functions:

- Maps are an array (N, H, W) or a list of (H, W) arrays (sizes may differ between images);
  masks come the same way, each the size of its map. A mask pixel is anomalous when ``> 0``.
- Higher scores mean "more anomalous". Scores must be finite.
- A metric that is undefined for the given data (one class only, no anomalous region) raises
  ``ValueError`` saying why, instead of returning a number nobody should report.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score, roc_curve

from dfr.api.prediction import Prediction

Maps = np.ndarray | Sequence[np.ndarray]
Clips = Sequence[ArrayLike]

_MINMAX = "per-clip min-max (leaks test statistics)"


# ---------------------------------------------------------------------------------------------
# Input checks


def _as_images(items: Maps, kind: str) -> list[np.ndarray]:
    """``items`` as a list of 2-D arrays; ``kind`` ("map" or "mask") names them in errors."""
    if isinstance(items, np.ndarray):
        if items.ndim != 3:
            raise ValueError(f"{kind}s must be an array (N, H, W) or a list of (H, W) arrays, "
                             f"got an array of shape {items.shape}")
        return list(items)
    images = [np.asarray(item) for item in items]
    for index, image in enumerate(images):
        if image.ndim != 2:
            raise ValueError(f"{kind}s must be (H, W) arrays, but {kind} {index} has shape {image.shape}")
    return images


def _check_finite(values: np.ndarray, what: str) -> None:
    """Raise unless ``values`` are real numbers without NaN or infinity."""
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool) or np.iscomplexobj(values):
        raise ValueError(f"{what} must hold real numbers, got dtype {values.dtype}")
    if not np.isfinite(values).all():
        counts = {"NaN": int(np.isnan(values).sum()), "infinite": int(np.isinf(values).sum())}
        found = " and ".join(f"{count} {kind}" for kind, count in counts.items() if count)
        raise ValueError(f"{what} contains {found} values; scores must be finite")


def _maps_and_masks(maps: Maps, masks: Maps) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Checked maps and their boolean masks (``mask > 0``), one pair per image."""
    maps, masks = _as_images(maps, "map"), _as_images(masks, "mask")
    if len(maps) != len(masks):
        raise ValueError(f"got {len(maps)} maps but {len(masks)} masks")
    if not maps:
        raise ValueError("no images: maps and masks are empty")
    for index, (anomaly_map, mask) in enumerate(zip(maps, masks)):
        if anomaly_map.shape != mask.shape:
            raise ValueError(f"map {index} has shape {anomaly_map.shape} but its mask has shape {mask.shape}; "
                             "evaluate at the mask resolution (resize the map to its mask, not the mask to the map)")
        _check_not_empty(anomaly_map, f"map {index}")
        _check_finite(anomaly_map, f"map {index}")
        _check_mask(mask, index)
    return maps, [mask > 0 for mask in masks]


def _check_not_empty(image: np.ndarray, what: str) -> None:
    """Raise for an image without pixels (a side of length 0)."""
    if image.size == 0:
        raise ValueError(f"{what} has shape {image.shape}: no pixels; every map and mask needs at least one")


def _check_mask(mask: np.ndarray, index: int) -> None:
    """Raise unless ``mask`` holds real numbers or bools without NaN (pixels are compared with ``> 0``)."""
    if not (np.issubdtype(mask.dtype, np.number) or mask.dtype == bool) or np.iscomplexobj(mask):
        raise ValueError(f"mask {index} must hold bools or real numbers (anomalous where > 0), got dtype {mask.dtype}")
    if np.issubdtype(mask.dtype, np.floating) and np.isnan(mask).any():
        raise ValueError(f"mask {index} contains {int(np.isnan(mask).sum())} NaN values, which are neither "
                         "anomalous (> 0) nor normal")


def _vector(values: ArrayLike, what: str) -> np.ndarray:
    """A finite 1-D array."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {array.shape}")
    _check_finite(array, what)
    return array


def _two_classes(labels: np.ndarray, what: str, unit: str) -> None:
    """Raise unless boolean ``labels`` hold both classes (ROC-AUC and EER need both)."""
    positives = int(np.count_nonzero(labels))
    if positives in (0, labels.size):
        kind = "normal" if positives == 0 else "anomalous"
        raise ValueError(f"{what} is undefined with one class: all {labels.size} {unit} are {kind}")


# ---------------------------------------------------------------------------------------------
# Images: PRO, pixel and image ROC-AUC, average precision


def _regions(masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Global region index of every pixel (0 = normal, 1..R = the 8-connected regions of all
    masks, in image order) and the pixel count of each index (normal pixels at index 0)."""
    labelled, offset = [], 0
    for mask in masks:
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        labels = labels.ravel()
        labels[labels > 0] += offset
        labelled.append(labels)
        offset += count - 1
    regions = np.concatenate(labelled)
    return regions, np.bincount(regions, minlength=offset + 1)


def _pro_curve(maps: list[np.ndarray], masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(fpr, pro, thresholds, number of regions) for checked maps and boolean masks."""
    regions, sizes = _regions(masks)
    if len(sizes) == 1:
        raise ValueError(f"PRO is undefined without anomalous regions: all {len(masks)} masks are empty "
                         "(an all-normal test set)")
    if sizes[0] == 0:
        raise ValueError("PRO needs normal pixels for its FPR axis, but every mask pixel is anomalous")
    scores = np.concatenate([anomaly_map.ravel() for anomaly_map in maps])
    order = np.argsort(scores)[::-1]  # one global sort, highest score first
    scores, regions = scores[order], regions[order]
    del order
    # A pixel of region r adds 1 / size(r) to the summed overlaps; a normal pixel adds 1 to the
    # false positives. Cumulative sums give both at every rank.
    weights = 1.0 / sizes
    weights[0] = 0.0
    overlap = weights[regions]
    np.cumsum(overlap, out=overlap)
    false_positives = np.cumsum(regions == 0)
    # Tied scores form one threshold: keep the last rank of each run of equal scores.
    last = np.append(np.flatnonzero(scores[1:] != scores[:-1]), scores.size - 1)
    fpr = np.concatenate([[0.0], false_positives[last] / sizes[0]])
    # overlap[-1] sums 1 over every region, i.e. equals their number: dividing by it gives the
    # mean over regions and makes the last point exactly 1 (no value can exceed it).
    pro = np.concatenate([[0.0], overlap[last] / overlap[-1]])
    thresholds = np.concatenate([[np.inf], scores[last].astype(np.float64)])
    return fpr, pro, thresholds, len(sizes) - 1


def pro_curve(maps: Maps, masks: Maps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-region-overlap curve of the MVTec AD protocol, at every distinct score.

    Args:
        maps: anomaly maps, (N, H, W) or a list of (H, W); higher = more anomalous.
        masks: ground truth shaped like ``maps``; a pixel is anomalous when ``> 0``. Regions are
            the 8-connected components of each mask.

    Returns:
        ``(fpr, pro, thresholds)``, float64 arrays of equal length. Point ``i`` counts the pixels
        with score ``>= thresholds[i]``: ``fpr`` is the fraction of all normal pixels (good images
        included), ``pro`` the mean over all regions of all images of the fraction of the region
        covered. The curve starts at (0, 0) (threshold ``inf``) and ends at (1, 1).

    Raises:
        ValueError: no anomalous pixel at all, or no normal pixel, or bad inputs.
    """
    fpr, pro, thresholds, _ = _pro_curve(*_maps_and_masks(maps, masks))
    return fpr, pro, thresholds


def _area_to_limit(fpr: np.ndarray, pro: np.ndarray, limit: float) -> float:
    """Trapezoid area under (fpr, pro) for fpr in [0, limit], interpolated at ``limit``, / ``limit``.

    Computed as 1 - (area above the curve) / limit with every term >= 0, so the result is <= 1
    in floating point, not only in exact arithmetic.
    """
    end = int(np.searchsorted(fpr, limit, side="left"))  # first point with fpr >= limit (fpr[0] = 0 < limit)
    gap = 1.0 - pro
    fraction = (limit - fpr[end - 1]) / (fpr[end] - fpr[end - 1])
    gap_at_limit = gap[end - 1] - (gap[end - 1] - gap[end]) * fraction
    x = np.append(fpr[:end], limit)
    g = np.append(gap[:end], gap_at_limit)
    above = float(np.sum(np.diff(x) * (g[1:] + g[:-1])) / 2.0)
    return 1.0 - above / limit


def _check_limit(fpr_limit: float) -> float:
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit}")
    return float(fpr_limit)


def pro_auc(maps: Maps, masks: Maps, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD definition).

    Trapezoid rule over :func:`pro_curve` from FPR 0 to exactly ``fpr_limit`` (linear
    interpolation at the limit), divided by ``fpr_limit``: 1.0 for a perfect map, about
    ``fpr_limit / 2`` for random scores, never above 1. Evaluate at the ground-truth mask
    resolution.

    Raises:
        ValueError: no anomalous region (all-normal test set), no normal pixel, ``fpr_limit``
            outside (0, 1], or bad inputs.
    """
    limit = _check_limit(fpr_limit)
    fpr, pro, _ = pro_curve(maps, masks)
    return _area_to_limit(fpr, pro, limit)


def pixel_auroc(maps: Maps, masks: Maps) -> float:
    """ROC-AUC over all pixels of all images (masks ``> 0`` are anomalous).

    Raises:
        ValueError: all pixels of one class, or bad inputs.
    """
    maps, masks = _maps_and_masks(maps, masks)
    labels = np.concatenate([mask.ravel() for mask in masks])
    _two_classes(labels, "pixel_auroc", "pixels")
    return float(roc_auc_score(labels, np.concatenate([anomaly_map.ravel() for anomaly_map in maps])))


def average_precision(maps: Maps, masks: Maps) -> float:
    """Pixel-level average precision: sum over thresholds of (recall step) x precision.

    scikit-learn's step-wise definition (no interpolation) over all pixels of all images,
    computed so that the result is ``<= 1`` in floating point too (see :func:`_step_average_precision`).

    Raises:
        ValueError: no anomalous pixel, or bad inputs.
    """
    maps, masks = _maps_and_masks(maps, masks)
    labels = np.concatenate([mask.ravel() for mask in masks])
    if not labels.any():
        raise ValueError(f"average_precision is undefined without anomalous pixels: "
                         f"all {labels.size} pixels are normal")
    return _step_average_precision(labels, np.concatenate([anomaly_map.ravel() for anomaly_map in maps]))


def _step_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores, highest first (scikit-learn's
    ``average_precision_score``), for boolean ``labels`` with at least one positive.

    Written as ``sum_k (TP_k - TP_{k-1}) P_k / TP_total``: every term is at most its integer
    recall step (``P_k <= 1``), so the rounded sum is at most ``TP_total`` and the result at most
    1. scikit-learn sums float recall steps, which can give 1.0000000000000002 for a perfect map.
    """
    order = np.argsort(scores, kind="stable")[::-1]  # highest score first
    sorted_scores = scores[order]
    # Tied scores form one threshold: keep the last rank of each run of equal scores.
    last = np.append(np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]), sorted_scores.size - 1)
    true_positives = np.cumsum(labels[order])[last]
    precision = true_positives / (last + 1.0)
    steps = np.diff(true_positives, prepend=0)
    return float(np.sum(steps * precision) / true_positives[-1])


def image_auroc(maps: Maps | None, labels: ArrayLike, *, scores: ArrayLike | None = None) -> float:
    """Image-level ROC-AUC.

    Args:
        maps: anomaly maps; each image's score is its map's maximum. ``None`` when ``scores``
            are given.
        labels: (N,) image labels, anomalous when ``> 0``.
        scores: (N,) image scores to use instead of map maxima.

    Raises:
        ValueError: both or neither of ``maps``/``scores``, lengths differ, one class only.
    """
    if (maps is None) == (scores is None):
        raise ValueError("image_auroc needs either maps (score = map maximum) or scores=, not both")
    if scores is None:
        images = _as_images(maps, "map")
        for index, anomaly_map in enumerate(images):
            _check_not_empty(anomaly_map, f"map {index}")
            _check_finite(anomaly_map, f"map {index}")
        scores = np.array([float(np.max(anomaly_map)) for anomaly_map in images])
    scores = _vector(scores, "scores")
    labels = _vector(labels, "labels") > 0
    if scores.size != labels.size:
        raise ValueError(f"got {scores.size} image scores but {labels.size} labels")
    _two_classes(labels, "image_auroc", "images")
    return float(roc_auc_score(labels, scores))


def _resolution(masks: list[np.ndarray]) -> str:
    sizes = sorted({mask.shape for mask in masks})
    text = ", ".join(f"{h}x{w}" for h, w in sizes)
    if len(sizes) == 1:
        return f"ground-truth mask resolution ({text}, HxW)"
    return f"ground-truth mask resolution (each image at its own mask size: {text}, HxW)"


def evaluate_images(
    prediction: Prediction, masks: Maps, labels: ArrayLike | None = None, *, fpr_limit: float = 0.3
) -> dict[str, Any]:
    """Pixel ROC-AUC, PRO-AUC, pixel AP and image ROC-AUC of a prediction, with the protocol used.

    Args:
        prediction: its ``anomaly_maps`` must already be at the resolution of ``masks``;
            ``scores`` are the image scores.
        masks: ground truth, (N, H, W) or a list of (H, W); anomalous where ``> 0``.
        labels: (N,) image labels (anomalous when ``> 0``); default: an image is anomalous when
            its mask has any anomalous pixel.
        fpr_limit: FPR limit of the PRO integral.

    Returns:
        A plain dict: ``pixel_auroc``, ``pro_auc``, ``pixel_ap``, ``image_auroc`` (``None``, with
        a warning, when the images are all of one class), and what was done: ``fpr_limit``,
        ``resolution``, ``images``, ``anomalous_images``, ``regions``, ``labels``,
        ``image_score``, ``aggregation``.

    Raises:
        ValueError: maps and masks differ in size or count, no anomalous pixel, no normal pixel.
    """
    limit = _check_limit(fpr_limit)
    maps, binary = _maps_and_masks(prediction.anomaly_maps, masks)
    if labels is None:
        image_labels = np.array([mask.any() for mask in binary])
        label_source = "from masks: an image is anomalous when its mask has a pixel > 0"
    else:
        image_labels = _vector(labels, "labels") > 0
        label_source = "given"
    scores = _vector(prediction.scores, "prediction.scores")
    if not scores.size == image_labels.size == len(maps):
        raise ValueError(f"got {len(maps)} maps, {scores.size} image scores and {image_labels.size} labels")
    fpr, pro, _, regions = _pro_curve(maps, binary)
    if 0 < image_labels.sum() < image_labels.size:
        image = image_auroc(None, image_labels, scores=scores)
    else:
        image = None
        warnings.warn(f"image_auroc is undefined: all {image_labels.size} images are "
                      f"{'anomalous' if image_labels.all() else 'normal'}; reported as None", stacklevel=2)
    return {
        "pixel_auroc": pixel_auroc(maps, binary),
        "pro_auc": _area_to_limit(fpr, pro, limit),
        "pixel_ap": average_precision(maps, binary),
        "image_auroc": image,
        "fpr_limit": limit,
        "resolution": _resolution(binary),
        "images": len(maps),
        "anomalous_images": int(image_labels.sum()),
        "regions": regions,
        "labels": label_source,
        "image_score": "prediction.scores",
        "aggregation": "pixel metrics pool all pixels of all images; PRO is the mean over all "
                       "8-connected regions of all images, its FPR over all normal pixels (good images included)",
    }


# ---------------------------------------------------------------------------------------------
# Video: frame ROC-AUC, EER, regularity score


def _clips(scores: Clips, labels: Clips) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Checked per-clip scores (float64) and boolean labels, aligned frame by frame."""
    score_clips, label_clips = list(scores), list(labels)
    if len(score_clips) != len(label_clips):
        raise ValueError(f"got scores for {len(score_clips)} clips but labels for {len(label_clips)}")
    if not score_clips:
        raise ValueError("no clips")
    checked_scores, checked_labels = [], []
    for index, (clip_scores, clip_labels) in enumerate(zip(score_clips, label_clips)):
        clip_scores, clip_labels = np.asarray(clip_scores), np.asarray(clip_labels)
        if clip_scores.ndim != 1 or clip_labels.ndim != 1:
            raise ValueError(f"clip {index}: scores and labels must be 1-D (one value per frame), got shapes "
                             f"{clip_scores.shape} and {clip_labels.shape}; pass one array per clip "
                             "(wrap a single clip in a list)")
        if clip_scores.size != clip_labels.size:
            raise ValueError(f"clip {index} has {clip_scores.size} scores but {clip_labels.size} labels")
        if clip_scores.size == 0:
            raise ValueError(f"clip {index} has no frames")
        _check_finite(clip_scores, f"scores of clip {index}")
        _check_finite(clip_labels, f"labels of clip {index}")
        checked_scores.append(clip_scores.astype(np.float64))
        checked_labels.append(clip_labels > 0)
    return checked_scores, checked_labels


def _min_max(values: np.ndarray) -> np.ndarray:
    """(v - min) / (max - min); all zeros for a constant clip."""
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def _eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """Equal error rate: where FPR = FNR on the ROC curve, interpolated linearly between points."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    difference = fpr - (1.0 - tpr)  # rises from -1 at (0, 0) to 1 at (1, 1)
    i = int(np.argmax(difference >= 0))
    if difference[i] == 0:
        return float(fpr[i])
    fraction = -difference[i - 1] / (difference[i] - difference[i - 1])
    return float(fpr[i - 1] + fraction * (fpr[i] - fpr[i - 1]))


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(labels, scores))


def _aggregate(
    metric: Callable[[np.ndarray, np.ndarray], float], scores: list[np.ndarray], labels: list[np.ndarray],
    mode: str, name: str,
) -> tuple[float, list[int]]:
    """``metric(labels, scores)`` over all frames (micro) or averaged over clips (macro); also
    returns the clips skipped in macro because their frames are all of one class."""
    if mode == "micro":
        all_labels = np.concatenate(labels)
        _two_classes(all_labels, name, "frames")
        return metric(all_labels, np.concatenate(scores)), []
    if mode != "macro":
        raise ValueError(f"mode must be 'micro' or 'macro', got {mode!r}")
    skipped = [index for index, clip in enumerate(labels) if clip.all() or not clip.any()]
    kept = [index for index in range(len(labels)) if index not in skipped]
    if not kept:
        raise ValueError(f"{name} (macro) is undefined: every one of the {len(labels)} clips "
                         "has frames of one class only")
    return float(np.mean([metric(labels[i], scores[i]) for i in kept])), skipped


def _warn_skipped(skipped: list[int], clips: int, name: str) -> None:
    if skipped:
        warnings.warn(f"{name} (macro): skipped clips {skipped}, whose frames are all of one class; "
                      f"the mean is over the other {clips - len(skipped)} of {clips} clips", stacklevel=3)


def _video(scores: Clips, labels: Clips, normalise: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    score_clips, label_clips = _clips(scores, labels)
    if normalise:
        score_clips = [_min_max(clip) for clip in score_clips]
    return score_clips, label_clips


def frame_auc(
    scores: Clips, labels: Clips, mode: Literal["micro", "macro"] = "micro", normalise: bool = False
) -> float:
    """Frame-level ROC-AUC from per-frame anomaly scores (higher = more anomalous).

    Args:
        scores: one 1-D array of frame scores per clip.
        labels: one 1-D array of frame labels per clip (anomalous when ``> 0``), same lengths.
        mode: ``"micro"``: one AUC over the frames of all clips concatenated; ``"macro"``: the
            mean of per-clip AUCs, skipping (with a warning) clips whose frames are all of one class.
        normalise: min-max normalise each clip's scores first (uses the test clip's own
            statistics; off by default; does not change macro values).

    Raises:
        ValueError: clip counts or lengths differ, one class only (micro), no usable clip (macro).
    """
    score_clips, label_clips = _video(scores, labels, normalise)
    value, skipped = _aggregate(_auc, score_clips, label_clips, mode, "frame_auc")
    _warn_skipped(skipped, len(label_clips), "frame_auc")
    return value


def eer(scores: Clips, labels: Clips, mode: Literal["micro", "macro"] = "micro", normalise: bool = False) -> float:
    """Equal error rate: the FPR at which FPR = FNR (= 1 - TPR) on the ROC curve, interpolated
    linearly between its points. Arguments and aggregation as in :func:`frame_auc`."""
    score_clips, label_clips = _video(scores, labels, normalise)
    value, skipped = _aggregate(_eer, score_clips, label_clips, mode, "eer")
    _warn_skipped(skipped, len(label_clips), "eer")
    return value


def regularity_score(errors: ArrayLike) -> np.ndarray:
    """Regularity of each frame of one clip: ``1 - (e - min e) / max e`` (float64, same length).

    ``errors`` (T,) are the frames' summed reconstruction errors (>= 0). This is the source
    notebooks' definition: it divides by ``max e``, not by ``max e - min e``, so the least
    regular frame gets ``min e / max e``, not 0. High = regular; use ``1 - s`` as an anomaly
    score. A clip of all-zero errors is perfectly regular (all ones).
    """
    e = _vector(errors, "errors").astype(np.float64)
    if e.size == 0:
        raise ValueError("errors is empty")
    if (e < 0).any():
        raise ValueError("errors must be >= 0 (summed reconstruction errors)")
    if e.max() == 0:
        return np.ones_like(e)
    return 1.0 - (e - e.min()) / e.max()


def evaluate_video(
    scores: Clips, labels: Clips, mode: Literal["micro", "macro"] = "micro", normalise: bool = False
) -> dict[str, Any]:
    """Frame ROC-AUC and EER of per-clip frame scores, with the protocol used.

    Arguments as in :func:`frame_auc`. Returns a plain dict: ``frame_auc``, ``eer``, ``mode``,
    ``aggregation``, ``normalisation`` (``"none"`` or ``"per-clip min-max (leaks test
    statistics)"``), ``clips``, ``skipped_clips`` (macro), ``frames``, ``anomalous_frames``.
    """
    score_clips, label_clips = _video(scores, labels, normalise)
    auc, skipped = _aggregate(_auc, score_clips, label_clips, mode, "frame_auc")
    rate, _ = _aggregate(_eer, score_clips, label_clips, mode, "eer")
    _warn_skipped(skipped, len(label_clips), "evaluate_video")
    aggregation = ("micro: all frames of all clips pooled" if mode == "micro"
                   else "macro: mean of per-clip values over the clips with both classes")
    return {
        "frame_auc": auc,
        "eer": rate,
        "mode": mode,
        "aggregation": aggregation,
        "normalisation": _MINMAX if normalise else "none",
        "clips": len(label_clips),
        "skipped_clips": skipped,
        "frames": int(sum(clip.size for clip in label_clips)),
        "anomalous_frames": int(sum(clip.sum() for clip in label_clips)),
    }


# ---------------------------------------------------------------------------------------------
# Boxes


def _boxes(per_image: Sequence[ArrayLike], columns: int, what: str) -> list[np.ndarray]:
    """Checked float64 arrays (k, columns), one per image; empty inputs become (0, columns)."""
    checked = []
    for index, boxes in enumerate(per_image):
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, columns)
        if boxes.ndim != 2 or boxes.shape[1] != columns:
            raise ValueError(f"{what} of image {index} must be an array (k, {columns}), got shape {boxes.shape}")
        _check_finite(boxes, f"{what} of image {index}")
        checked.append(boxes)
    return checked


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one box (x0, y0, x1, y1) with each row of ``others`` (m, 4+); x1/y1 exclusive."""
    width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    intersection = width * height
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - intersection
    return np.divide(intersection, union, out=np.zeros_like(union, dtype=np.float64), where=union > 0)


#: IoU thresholds of COCO's AP (AP50:95): 0.50, 0.55, …, 0.95.
COCO_IOUS = np.linspace(0.5, 0.95, 10)
AP_INTERPOLATIONS = ("coco", "all_points")


def box_metrics(
    pred_boxes: Sequence[ArrayLike], gt_boxes: Sequence[ArrayLike], iou: float = 0.5,
    interpolation: str = "coco",
) -> dict[str, float | int]:
    """Precision, recall, F1 and average precision of predicted boxes at an IoU threshold.

    Args:
        pred_boxes: per image an array (k, 5): ``x0, y0, x1, y1, score`` in pixels, x1/y1 exclusive.
        gt_boxes: per image an array (m, 4): ``x0, y0, x1, y1``.
        iou: a prediction matches a ground-truth box when their IoU is ``>= iou``.
        interpolation: how AP summarises the precision-recall curve: ``"coco"`` (COCO's
            mean of the interpolated precision at the 101 recalls 0, 0.01, …, 1) or
            ``"all_points"`` (VOC 2010+: the exact area under the interpolated curve).
            Both interpolate precision as the best precision at this or any higher recall.

    Matching is greedy, as in COCO: predictions of all images in order of descending score
    (ties in input order); each takes the still unmatched ground-truth box of highest IoU in
    its image. Precision, recall and F1 count every given box (the model's threshold made
    them). With no predictions, precision, F1 and AP are 0.

    Returns:
        ``precision``, ``recall``, ``f1``, ``average_precision``, ``true_positives``,
        ``false_positives``, ``false_negatives``.

    Raises:
        ValueError: no ground-truth box at all, image counts differ, bad shapes.
    """
    preds, gts = _checked_box_sets(pred_boxes, gt_boxes)
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou must lie in (0, 1], got {iou}")
    if interpolation not in AP_INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {AP_INTERPOLATIONS}, got {interpolation!r}")
    n_gt = sum(len(boxes) for boxes in gts)
    hits = _ranked_hits(preds, gts, iou)
    true_positives = int(hits.sum())
    precision = true_positives / hits.size if hits.size else 0.0
    recall = true_positives / n_gt
    f1 = 2 * precision * recall / (precision + recall) if true_positives else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "average_precision": _average_precision(hits, n_gt, interpolation),
        "true_positives": true_positives,
        "false_positives": int(hits.size - true_positives),
        "false_negatives": n_gt - true_positives,
    }


def detection_metrics(pred_boxes: Sequence[ArrayLike], gt_boxes: Sequence[ArrayLike]) -> dict[str, float]:
    """COCO-style summary of predicted boxes against ground truth.

    Returns ``precision``, ``recall`` and ``f1`` at IoU 0.5 (every given box counts),
    ``ap50`` (COCO AP at IoU 0.5), ``ap50_95`` (COCO AP averaged over IoU 0.50, 0.55, …,
    0.95), ``recall_iou30`` (recall at IoU 0.3, for defects whose outline is loose) and
    ``count_error`` (mean over images of ``|predicted boxes - true boxes|``). Inputs as for
    :func:`box_metrics`; unlike COCO there is no cap of 100 boxes per image.
    """
    preds, gts = _checked_box_sets(pred_boxes, gt_boxes)
    at_half = box_metrics(preds, gts, 0.5)
    return {
        "precision": at_half["precision"], "recall": at_half["recall"], "f1": at_half["f1"],
        "ap50": at_half["average_precision"],
        "ap50_95": float(np.mean([box_metrics(preds, gts, float(iou))["average_precision"] for iou in COCO_IOUS])),
        "recall_iou30": box_metrics(preds, gts, 0.3)["recall"],
        "count_error": float(np.mean([abs(len(p) - len(g)) for p, g in zip(preds, gts)])),
    }


def _checked_box_sets(pred_boxes, gt_boxes) -> tuple[list[np.ndarray], list[np.ndarray]]:
    preds, gts = _boxes(pred_boxes, 5, "pred_boxes"), _boxes(gt_boxes, 4, "gt_boxes")
    if len(preds) != len(gts):
        raise ValueError(f"got predicted boxes for {len(preds)} images but ground truth for {len(gts)}")
    if not any(len(boxes) for boxes in gts):
        raise ValueError("box metrics need at least one ground-truth box: recall and AP are undefined without")
    return preds, gts


def _ranked_hits(preds: list[np.ndarray], gts: list[np.ndarray], iou: float) -> np.ndarray:
    """Whether each prediction, in order of descending score, matches a ground-truth box."""
    image_of = np.concatenate([np.full(len(boxes), index) for index, boxes in enumerate(preds)])
    row_of = np.concatenate([np.arange(len(boxes)) for boxes in preds])
    order = np.argsort(-np.concatenate([boxes[:, 4] for boxes in preds]), kind="stable")
    taken = [np.zeros(len(boxes), dtype=bool) for boxes in gts]
    hits = np.zeros(order.size, dtype=bool)
    for rank, k in enumerate(order):
        image = image_of[k]
        if not len(gts[image]):
            continue
        overlaps = box_iou(preds[image][row_of[k], :4], gts[image])
        overlaps[taken[image]] = -1.0
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou:
            taken[image][best] = True
            hits[rank] = True
    return hits


def _average_precision(hits: np.ndarray, n_gt: int, interpolation: str) -> float:
    """AP of ranked hits; precision made non-increasing (the best precision at this or any
    higher recall), then averaged at COCO's 101 recalls or integrated over all points."""
    if not hits.size:
        return 0.0
    found = np.cumsum(hits)
    recall = found / n_gt
    envelope = np.maximum.accumulate((found / np.arange(1, hits.size + 1))[::-1])[::-1]
    if interpolation == "all_points":
        return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * envelope))
    levels = np.linspace(0.0, 1.0, 101)
    first = np.searchsorted(recall, levels - 1e-12, side="left")
    reached = first < hits.size
    return float(np.sum(envelope[first[reached]]) / levels.size)


def evaluate_boxes(
    prediction: Prediction | Sequence[ArrayLike], gt_boxes: Sequence[ArrayLike], iou: float = 0.5
) -> dict[str, Any]:
    """:func:`box_metrics` of a prediction's boxes (or a list of (k, 5) arrays), with the protocol.

    Returns a plain dict: the entries of :func:`box_metrics` plus ``iou_threshold``, ``images``,
    ``predictions``, ``ground_truth``, ``matching``, ``ap_interpolation``, ``box_convention``.
    """
    pred_boxes = prediction.boxes if isinstance(prediction, Prediction) else prediction
    result = box_metrics(pred_boxes, gt_boxes, iou)
    return result | {
        "iou_threshold": float(iou),
        "images": len(gt_boxes),
        "predictions": result["true_positives"] + result["false_positives"],
        "ground_truth": result["true_positives"] + result["false_negatives"],
        "matching": "greedy by descending score over all images; each prediction takes the unmatched "
                    "ground-truth box of highest IoU in its image when IoU >= iou_threshold",
        "ap_interpolation": "COCO: interpolated precision averaged at the 101 recalls 0, 0.01, ..., 1",
        "box_convention": "x0, y0, x1, y1 in pixels, x1/y1 exclusive; area = (x1 - x0) * (y1 - y0)",
    }
