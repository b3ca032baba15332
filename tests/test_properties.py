"""Property-based tests (hypothesis) of the metrics in ``dfr.metrics`` and the image readers of
``dfr.data.io`` / ``dfr.data.datasets``.

Every test runs under the derandomized, database-free settings ``PROPS`` below: the examples are
the same on every run, nothing is written to ``.hypothesis/`` and nothing needs the network.

Metrics: values in [0, 1]; invariance under strictly increasing transforms of the scores; ROC-AUC
equal to the brute-force Mann-Whitney probability P(s_anomalous > s_normal) + 0.5 P(equal) (so
all-equal scores give 0.5); one-class inputs, shape mismatches and empty or non-numeric inputs
raise a ``ValueError`` that says what is wrong; PRO-AUC is 1.0 for a map equal to its mask.

Readers: a folder of random junk (random bytes under image suffixes, corrupted and truncated
real images, headers declaring other sizes, zero-byte and text files, hidden files, subfolders)
never makes ``list_images`` / ``read_image`` / ``load_images`` / ``ImageDataset`` fail other than
with a ``ValueError``/``OSError`` naming the offending file; whatever decodes obeys the channel
rule (float32 (H, W, C), C in {1, 3}, values in [0, 1]).
"""
from __future__ import annotations

import string
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from dfr.api.prediction import Prediction
from dfr.data.datasets import ImageDataset
from dfr.data.io import (
    IMAGE_SUFFIXES,
    list_images,
    load_images,
    natural_key,
    read_image,
)
from dfr.metrics import (
    average_precision,
    box_iou,
    box_metrics,
    detection_metrics,
    eer,
    evaluate_boxes,
    evaluate_images,
    evaluate_video,
    frame_auc,
    image_auroc,
    pixel_auroc,
    pro_auc,
    pro_curve,
    regularity_score,
)

#: Deterministic, offline, no example database; ``max_examples`` set per test.
PROPS = settings(derandomize=True, deadline=None, database=None, max_examples=75, print_blob=False)


# ---------------------------------------------------------------------------------------------
# Helpers and strategies: metrics


def mann_whitney(scores, labels) -> float:
    """ROC-AUC by brute force over all (anomalous, normal) pairs: P(s_a > s_n) + 0.5 P(s_a = s_n)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels) > 0
    positive, negative = scores[labels], scores[~labels]
    greater = np.sum(positive[:, None] > negative[None, :])
    equal = np.sum(positive[:, None] == negative[None, :])
    return float((greater + 0.5 * equal) / (positive.size * negative.size))


#: Strictly increasing maps of the reals that are exact or keep every order on the small integer
#: scores they are applied to (|x| <= 12), so ties stay ties and distinct values stay distinct.
TRANSFORMS = {
    "3x+7": lambda x: 3.0 * x + 7.0,
    "exp": lambda x: np.exp(x / 4.0),
    "cube": lambda x: x ** 3,
    "shift_cube": lambda x: (x + 13.0) ** 3,  # x**3 on x >= 0
    "arctan": np.arctan,
    "rank": lambda x: rankdata(x, method="average").reshape(np.shape(x)),  # ties share a rank
}
transforms = st.sampled_from(sorted(TRANSFORMS))


def apply(name: str, values):
    """``TRANSFORMS[name]`` applied to one array or to each array of a list."""
    function = TRANSFORMS[name]
    if name == "rank" and isinstance(values, list):  # rank over all values together, then split
        flat = function(np.concatenate([np.ravel(v) for v in values]))
        out, at = [], 0
        for v in values:
            out.append(flat[at:at + np.size(v)].reshape(np.shape(v)))
            at += np.size(v)
        return out
    if isinstance(values, list):
        return [function(np.asarray(v, dtype=np.float64)) for v in values]
    return function(np.asarray(values, dtype=np.float64))


small_ints = st.integers(-12, 12)
finite_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def labelled_scores(draw, values=small_ints, min_size=2, max_size=30):
    """(scores float64 (n,), labels bool (n,)) with both classes present."""
    n = draw(st.integers(min_size, max_size))
    labels = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if labels.all() or not labels.any():
        labels[draw(st.integers(0, n - 1))] ^= True
    scores = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
    return scores, labels


@st.composite
def maps_and_masks(draw, values=small_ints, both_classes=True, max_images=3, max_side=6):
    """(maps, masks): 1..3 images of their own small sizes (one (N, H, W) array when the sizes
    agree and the draw says so), mask values in {-1, 0, 1, 255} (anomalous when > 0); with
    ``both_classes`` at least one anomalous and one normal pixel overall."""
    count = draw(st.integers(1, max_images))
    same = draw(st.booleans())
    shapes = [(draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))]
    shapes += [shapes[0] if same else (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
               for _ in range(count - 1)]
    maps, masks = [], []
    for h, w in shapes:
        maps.append(np.array(draw(st.lists(values, min_size=h * w, max_size=h * w)), dtype=np.float64).reshape(h, w))
        masks.append(np.array(draw(st.lists(st.sampled_from([-1, 0, 0, 1, 255]), min_size=h * w,
                                            max_size=h * w))).reshape(h, w))
    if both_classes:
        flat = np.concatenate([m.ravel() for m in masks]) > 0
        if flat.all() or not flat.any():
            image = draw(st.integers(0, count - 1))
            if masks[image].size == 1:  # a one-pixel image cannot hold both: flip it alone
                masks[image] = np.where(masks[image] > 0, 0, 1)
                flat = np.concatenate([m.ravel() for m in masks]) > 0
                if flat.all() or not flat.any():  # every image is one pixel and all agreed
                    masks.append(np.array([[0 if flat.all() else 1]]))
                    maps.append(np.array([[draw(values)]], dtype=np.float64))
            else:
                pixel = draw(st.integers(0, masks[image].size - 1))
                masks[image] = masks[image].copy()
                masks[image].flat[pixel] = 0 if masks[image].flat[pixel] > 0 else 1
    if same and len(maps) == count and draw(st.booleans()):
        return np.stack(maps), np.stack(masks)
    return maps, masks


def pooled(maps, masks):
    """All pixels of all images: (scores, labels)."""
    return (np.concatenate([np.ravel(m) for m in maps]).astype(np.float64),
            np.concatenate([np.ravel(m) for m in masks]) > 0)


@st.composite
def clips(draw, values=small_ints, max_clips=4, max_frames=12):
    """(scores, labels): per-clip 1-D arrays; frames of both classes over all clips."""
    count = draw(st.integers(1, max_clips))
    scores, labels = [], []
    for _ in range(count):
        n = draw(st.integers(1, max_frames))
        scores.append(np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64))
        labels.append(np.array(draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n))))
    flat = np.concatenate(labels)
    if flat.all() or not flat.any():
        labels[0] = labels[0].copy()
        labels[0][0] = 1 - labels[0][0]
        if len(labels[0]) == 1 and len(labels) == 1:  # one frame in all: add a frame of the other class
            labels[0] = np.append(labels[0], 1 - labels[0][0])
            scores[0] = np.append(scores[0], float(draw(values)))
    return scores, labels


# ---------------------------------------------------------------------------------------------
# Image-level ROC-AUC


@PROPS
@given(labelled_scores(values=finite_floats | small_ints.map(float)))
def test_image_auroc_in_unit_interval_and_equals_mann_whitney(data):
    """image_auroc(scores=...) lies in [0, 1] and equals the brute-force Mann-Whitney
    probability P(s_a > s_n) + 0.5 P(s_a = s_n) over all pairs (ties included)."""
    scores, labels = data
    value = image_auroc(None, labels.astype(int), scores=scores)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(mann_whitney(scores, labels), abs=1e-12)


@PROPS
@given(labelled_scores(), transforms)
def test_image_auroc_invariant_under_increasing_transforms(data, name):
    """A strictly increasing transform of the image scores leaves image_auroc unchanged."""
    scores, labels = data
    assert image_auroc(None, labels, scores=apply(name, scores)) == pytest.approx(
        image_auroc(None, labels, scores=scores), abs=1e-12)


@PROPS
@given(st.data())
def test_argsort_rank_of_distinct_scores_leaves_auroc_unchanged(data):
    """With distinct scores, replacing each by its position in the sorted order (argsort of
    argsort) changes neither image_auroc nor frame_auc."""
    n = data.draw(st.integers(2, 25))
    scores = np.array(data.draw(st.lists(finite_floats, min_size=n, max_size=n, unique=True)))
    labels = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    labels[0], labels[1] = True, False
    ranks = np.argsort(np.argsort(scores)).astype(np.float64)
    assert image_auroc(None, labels, scores=ranks) == pytest.approx(image_auroc(None, labels, scores=scores), abs=1e-12)
    assert frame_auc([ranks], [labels]) == pytest.approx(frame_auc([scores], [labels]), abs=1e-12)


@PROPS
@given(st.lists(st.lists(small_ints, min_size=1, max_size=5).map(lambda v: np.array(v, float).reshape(1, -1)),
                min_size=2, max_size=6), st.data())
def test_image_auroc_from_maps_uses_map_maxima(maps, data):
    """image_auroc(maps, labels) is the Mann-Whitney AUC of the map maxima, and is unchanged by
    an increasing transform of every map value."""
    labels = np.array(data.draw(st.lists(st.booleans(), min_size=len(maps), max_size=len(maps))))
    labels[0], labels[1] = True, False
    value = image_auroc(maps, labels)
    assert value == pytest.approx(mann_whitney([m.max() for m in maps], labels), abs=1e-12)
    assert image_auroc(apply(data.draw(transforms), maps), labels) == pytest.approx(value, abs=1e-12)


@PROPS
@given(st.integers(2, 40), st.floats(-1e9, 1e9, allow_nan=False), st.data())
def test_all_equal_scores_give_half(n, constant, data):
    """All scores equal: every ROC-AUC is 0.5 (all pairs tie) and the EER is 0.5."""
    labels = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    labels[0], labels[-1] = True, False
    scores = np.full(n, constant)
    assert image_auroc(None, labels, scores=scores) == 0.5
    assert pixel_auroc([scores.reshape(1, n)], [labels.reshape(1, n)]) == 0.5
    assert frame_auc([scores], [labels]) == 0.5
    assert frame_auc([scores], [labels], mode="macro") == 0.5
    assert eer([scores], [labels]) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("labels, scores, expected", [
    # 1 anomalous (2) vs normals (1, 2, 3): beats 1, ties 2: (1 + 0.5) / 3
    ([1, 0, 0, 0], [2, 1, 2, 3], 1.5 / 3),
    # anomalous (1, 1) vs normals (1, 0): pairs 1>0 twice, ties twice: (2 + 1) / 4
    ([1, 1, 0, 0], [1, 1, 1, 0], 3 / 4),
    ([0, 1], [5, 5], 0.5),
    ([0, 1], [4, 5], 1.0),
    ([0, 1], [5, 4], 0.0),
])
def test_auroc_ties_by_hand(labels, scores, expected):
    """Small hand-computed cases with ties: AUROC = P(s_a > s_n) + 0.5 P(s_a = s_n)."""
    assert mann_whitney(scores, labels) == pytest.approx(expected)
    assert image_auroc(None, labels, scores=scores) == pytest.approx(expected)
    assert frame_auc([np.array(scores)], [np.array(labels)]) == pytest.approx(expected)


@PROPS
@given(st.integers(1, 20), st.booleans(), st.data())
def test_one_class_labels_raise_clear_value_error(n, anomalous, data):
    """Labels of one class only: image/pixel ROC-AUC, PRO, frame AUC and EER (micro and macro)
    and box metrics without ground truth raise ValueError naming the class and the count;
    average precision raises only when nothing is anomalous (all-anomalous gives 1.0)."""
    kind = "anomalous" if anomalous else "normal"
    scores = np.array(data.draw(st.lists(small_ints, min_size=n, max_size=n)), dtype=np.float64)
    labels = np.full(n, int(anomalous))
    with pytest.raises(ValueError, match=f"image_auroc is undefined with one class: all {n} images are {kind}"):
        image_auroc(None, labels, scores=scores)
    with pytest.raises(ValueError, match=f"pixel_auroc is undefined with one class: all {n} pixels are {kind}"):
        pixel_auroc([scores.reshape(1, n)], [labels.reshape(1, n)])
    with pytest.raises(ValueError, match=f"frame_auc is undefined with one class: all {n} frames are {kind}"):
        frame_auc([scores], [labels])
    with pytest.raises(ValueError, match=f"eer is undefined with one class: all {n} frames are {kind}"):
        eer([scores], [labels])
    with pytest.raises(ValueError, match="every one of the 2 clips has frames of one class only"):
        frame_auc([scores, scores], [labels, 1 - labels], mode="macro")
    with pytest.raises(ValueError, match="PRO needs normal pixels" if anomalous else "PRO is undefined without anomalous regions"):
        pro_auc([scores.reshape(1, n)], [labels.reshape(1, n)])
    if anomalous:
        assert average_precision([scores.reshape(1, n)], [labels.reshape(1, n)]) == 1.0
    else:
        with pytest.raises(ValueError, match=f"undefined without anomalous pixels: all {n} pixels are normal"):
            average_precision([scores.reshape(1, n)], [labels.reshape(1, n)])
    with pytest.raises(ValueError, match="at least one ground-truth box"):
        box_metrics([np.array([[0, 0, 2, 2, 1.0]])], [np.zeros((0, 4))])


# ---------------------------------------------------------------------------------------------
# Pixel metrics and PRO


@PROPS
@given(maps_and_masks(values=finite_floats | small_ints.map(float)), st.floats(0.0, 1.0, exclude_min=True))
def test_pixel_metrics_in_unit_interval(data, limit):
    """pixel_auroc (= brute-force Mann-Whitney over all pixels), average_precision and
    pro_auc at any limit in (0, 1] lie in [0, 1]; the PRO curve is non-decreasing from (0, 0)
    to (1, 1) with strictly decreasing thresholds."""
    maps, masks = data
    scores, labels = pooled(maps, masks)
    auroc = pixel_auroc(maps, masks)
    assert 0.0 <= auroc <= 1.0
    assert auroc == pytest.approx(mann_whitney(scores, labels), abs=1e-12)
    ap = average_precision(maps, masks)
    assert 0.0 <= ap <= 1.0
    assert ap == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert 0.0 <= pro_auc(maps, masks, fpr_limit=limit) <= 1.0
    fpr, pro, thresholds = pro_curve(maps, masks)
    assert (fpr[0], pro[0], fpr[-1], pro[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)
    assert thresholds[0] == np.inf and np.all(np.diff(thresholds) < 0)
    assert len(thresholds) == np.unique(scores).size + 1


@PROPS
@given(maps_and_masks(), transforms, st.floats(0.0, 1.0, exclude_min=True))
def test_pixel_metrics_invariant_under_increasing_transforms(data, name, limit):
    """A strictly increasing transform of the map values leaves pixel_auroc, average_precision,
    pro_auc, the PRO curve's (fpr, pro) points and image_auroc of the map maxima unchanged."""
    maps, masks = data
    moved = apply(name, list(maps))
    assert pixel_auroc(moved, masks) == pytest.approx(pixel_auroc(maps, masks), abs=1e-12)
    assert average_precision(moved, masks) == pytest.approx(average_precision(maps, masks), abs=1e-12)
    assert pro_auc(moved, masks, limit) == pytest.approx(pro_auc(maps, masks, limit), abs=1e-9)
    fpr, pro, _ = pro_curve(maps, masks)
    moved_fpr, moved_pro, _ = pro_curve(moved, masks)
    np.testing.assert_array_equal(moved_fpr, fpr)
    np.testing.assert_allclose(moved_pro, pro, rtol=0, atol=1e-12)
    labels = [int((np.asarray(m) > 0).any()) for m in masks]
    if 0 < sum(labels) < len(labels):
        assert image_auroc(moved, labels) == pytest.approx(image_auroc(list(maps), labels), abs=1e-12)


@PROPS
@given(maps_and_masks(), st.floats(0.01, 100.0), st.floats(-100.0, 100.0), st.floats(0.0, 1.0, exclude_min=True))
def test_map_equal_to_mask_is_perfect_and_its_negation_worst(data, scale, offset, limit):
    """A map equal to its (binarised) mask, or any positive rescaling of it, gives pro_auc,
    pixel_auroc and average_precision exactly 1.0; the negated mask gives pixel_auroc and
    pro_auc 0.0."""
    _, masks = data
    binary = [(np.asarray(m) > 0).astype(np.float64) for m in masks]
    for maps in (binary, [scale * b + offset for b in binary]):
        assert pro_auc(maps, masks, limit) == 1.0
        assert pixel_auroc(maps, masks) == 1.0
        assert average_precision(maps, masks) == 1.0
    negated = [-b for b in binary]
    assert pixel_auroc(negated, masks) == 0.0
    assert pro_auc(negated, masks, limit) == pytest.approx(0.0, abs=1e-12)


@PROPS
@given(maps_and_masks(), st.floats(0.0, 1.0, exclude_min=True))
def test_separating_map_scores_exactly_one(data, limit):
    """Any map whose anomalous pixels all score above all normal pixels (many distinct scores
    on both sides) gives pro_auc, pixel_auroc and average_precision exactly 1.0, never above
    (scikit-learn's AP summation alone gives 1.0000000000000002 on some of these)."""
    maps, masks = data
    separated = [np.where(np.asarray(k) > 0, 100.0 + m, m) for m, k in zip(maps, masks)]
    assert pro_auc(separated, masks, limit) == 1.0
    assert pixel_auroc(separated, masks) == 1.0
    assert average_precision(separated, masks) == 1.0


def _prediction(maps, scores):
    return Prediction(anomaly_maps=maps, scores=np.asarray(scores, dtype=np.float64),
                      masks=[np.asarray(m) > 0 for m in maps], boxes=[np.zeros((0, 5)) for _ in maps], threshold=0.0)


@PROPS
@given(maps_and_masks(), st.floats(0.0, 1.0, exclude_min=True))
def test_evaluate_images_agrees_with_the_single_metrics(data, limit):
    """evaluate_images reports the same pixel_auroc, pro_auc, pixel_ap and image_auroc as the
    single functions (image_auroc None, with a warning, when all images share a label)."""
    maps, masks = data
    maps = list(maps)
    scores = [float(m.max()) for m in maps]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = evaluate_images(_prediction(maps, scores), masks, fpr_limit=limit)
    assert report["pixel_auroc"] == pixel_auroc(maps, masks)
    assert report["pro_auc"] == pro_auc(maps, masks, limit)
    assert report["pixel_ap"] == average_precision(maps, masks)
    labels = [int((np.asarray(m) > 0).any()) for m in masks]
    if 0 < sum(labels) < len(labels):
        assert report["image_auroc"] == image_auroc(None, labels, scores=scores)
        assert 0.0 <= report["image_auroc"] <= 1.0
    else:
        assert report["image_auroc"] is None
        assert any("image_auroc is undefined" in str(w.message) for w in caught)


@PROPS
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=3), st.data())
def test_maps_and_masks_of_different_shapes_raise_value_error(shapes, data):
    """A map whose shape differs from its mask's raises ValueError naming the image and both
    shapes, in pixel_auroc, average_precision, pro_auc, pro_curve and evaluate_images; so does a
    different number of maps and masks."""
    index = data.draw(st.integers(0, len(shapes) - 1))
    h, w = shapes[index]
    other = data.draw(st.tuples(st.integers(1, 6), st.integers(1, 6)).filter(lambda s: s != (h, w)))
    maps = [np.arange(a * b, dtype=np.float64).reshape(a, b) for a, b in shapes]
    masks = [(m > 0).astype(np.uint8) for m in maps]
    masks[index] = np.ones(other, np.uint8)
    masks[index].flat[0] = 0
    message = rf"map {index} has shape \({h}, {w}\) but its mask has shape \({other[0]}, {other[1]}\)"
    for metric in (pixel_auroc, average_precision, pro_auc, pro_curve):
        with pytest.raises(ValueError, match=message):
            metric(maps, masks)
    with pytest.raises(ValueError, match=message):
        evaluate_images(_prediction(maps, [0.0] * len(maps)), masks)
    with pytest.raises(ValueError, match=f"got {len(maps)} maps but {len(maps) + 1} masks"):
        pixel_auroc(maps, masks + [np.ones((2, 2))])


@pytest.mark.parametrize("metric", [pixel_auroc, average_precision, pro_auc, pro_curve])
def test_empty_or_non_numeric_inputs_raise_value_error(metric):
    """A map without pixels, a mask of strings or objects, or a mask holding NaN raise a
    ValueError saying so (instead of an OpenCV assertion or a numpy TypeError)."""
    good_map, good_mask = np.array([[0.0, 1.0]]), np.array([[0, 1]])
    with pytest.raises(ValueError, match=r"map 1 has shape \(0, 3\): no pixels"):
        metric([good_map, np.zeros((0, 3))], [good_mask, np.zeros((0, 3))])
    with pytest.raises(ValueError, match="mask 0 must hold bools or real numbers.*dtype <U1"):
        metric([good_map], [np.array([["a", "b"]])])
    with pytest.raises(ValueError, match="mask 0 must hold bools or real numbers.*dtype object"):
        metric([good_map], [np.array([[None, 1]])])
    with pytest.raises(ValueError, match="mask 0 contains 1 NaN values"):
        metric([good_map], [np.array([[np.nan, 1.0]])])
    with pytest.raises(ValueError, match="map 0 contains 1 NaN"):
        metric([np.array([[np.nan, 1.0]])], [good_mask])


def test_image_auroc_map_without_pixels_raises_value_error():
    """image_auroc of a map without pixels says which map, not numpy's 'zero-size array'."""
    with pytest.raises(ValueError, match=r"map 0 has shape \(0, 3\): no pixels"):
        image_auroc([np.zeros((0, 3)), np.ones((2, 2))], [0, 1])
    with pytest.raises(ValueError, match="got 2 image scores but 3 labels"):
        image_auroc(None, [0, 1, 1], scores=[0.5, 0.7])


# ---------------------------------------------------------------------------------------------
# Video: frame AUC and EER


@PROPS
@given(clips(values=finite_floats | small_ints.map(float)))
def test_frame_auc_and_eer_in_unit_interval_and_equal_brute_force(data):
    """frame_auc micro is the Mann-Whitney AUC of all frames pooled, macro the mean of the
    per-clip Mann-Whitney AUCs over clips with both classes (one-class clips skipped with a
    warning naming them); EER and all AUCs lie in [0, 1]; evaluate_video agrees."""
    scores, labels = data
    all_scores, all_labels = np.concatenate(scores), np.concatenate(labels) > 0
    micro = frame_auc(scores, labels)
    assert 0.0 <= micro <= 1.0
    assert micro == pytest.approx(mann_whitney(all_scores, all_labels), abs=1e-12)
    assert 0.0 <= eer(scores, labels) <= 1.0
    kept = [i for i, clip in enumerate(labels) if 0 < clip.sum() < clip.size]
    skipped = [i for i in range(len(labels)) if i not in kept]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if kept:
            macro = frame_auc(scores, labels, mode="macro")
            assert 0.0 <= macro <= 1.0
            assert macro == pytest.approx(np.mean([mann_whitney(scores[i], labels[i]) for i in kept]), abs=1e-12)
            assert 0.0 <= eer(scores, labels, mode="macro") <= 1.0
        else:
            with pytest.raises(ValueError, match="has frames of one class only"):
                frame_auc(scores, labels, mode="macro")
    if kept:
        assert any(f"skipped clips {skipped}" in str(w.message) for w in caught) == bool(skipped)
    report = evaluate_video(scores, labels)
    assert report["frame_auc"] == micro and report["eer"] == eer(scores, labels)
    assert report["frames"] == all_labels.size and report["anomalous_frames"] == all_labels.sum()


@PROPS
@given(clips(), transforms, st.sampled_from(["micro", "macro"]))
def test_frame_auc_and_eer_invariant_under_increasing_transforms(data, name, mode):
    """The same strictly increasing transform of all frame scores leaves frame_auc and eer
    (micro and macro) unchanged."""
    scores, labels = data
    if mode == "macro" and not any(0 < clip.sum() < clip.size for clip in labels):
        return
    moved = apply(name, scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert frame_auc(moved, labels, mode) == pytest.approx(frame_auc(scores, labels, mode), abs=1e-12)
        assert eer(moved, labels, mode) == pytest.approx(eer(scores, labels, mode), abs=1e-9)


@PROPS
@given(clips(), st.data())
def test_per_clip_normalisation(data, more):
    """normalise=True does not change macro values, and makes micro values invariant under a
    separate positive affine transform (a x + b, a > 0) of each clip."""
    scores, labels = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if any(0 < clip.sum() < clip.size for clip in labels):
            assert frame_auc(scores, labels, "macro", normalise=True) == pytest.approx(
                frame_auc(scores, labels, "macro"), abs=1e-12)
        moved = [more.draw(st.integers(1, 9)) * clip + more.draw(st.integers(-50, 50)) for clip in scores]
        assert frame_auc(moved, labels, normalise=True) == pytest.approx(
            frame_auc(scores, labels, normalise=True), abs=1e-12)
        assert eer(moved, labels, normalise=True) == pytest.approx(eer(scores, labels, normalise=True), abs=1e-9)


@PROPS
@given(st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=30))
def test_regularity_score_in_unit_interval_and_decreasing_in_error(errors):
    """regularity_score lies in [0, 1], is 1 at the smallest error, min e / max e at the
    largest, and never increases with the error."""
    errors = np.array(errors)
    score = regularity_score(errors)
    assert score.shape == errors.shape and np.all((0.0 <= score) & (score <= 1.0))
    assert score[np.argmin(errors)] == 1.0
    if errors.max() > 0:
        assert score[np.argmax(errors)] == pytest.approx(errors.min() / errors.max(), abs=1e-12)
    order = np.argsort(errors, kind="stable")
    assert np.all(np.diff(score[order]) <= 0)


# ---------------------------------------------------------------------------------------------
# Boxes


box = st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 6), st.integers(0, 6)).map(
    lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])


@st.composite
def box_sets(draw, max_images=3):
    """(pred_boxes, gt_boxes) per image; some predictions are copies of ground-truth boxes;
    scores are small integers (ties happen); at least one ground-truth box overall."""
    count = draw(st.integers(1, max_images))
    gts = [draw(st.lists(box, max_size=4)) for _ in range(count)]
    if not any(gts):
        gts[0] = [draw(box)]
    preds = []
    for image in range(count):
        rows = draw(st.lists(box, max_size=4))
        rows += [g for g in gts[image] if draw(st.booleans())]
        preds.append([r + [float(draw(st.integers(0, 10)))] for r in rows])
    return ([np.array(p, dtype=np.float64).reshape(-1, 5) for p in preds],
            [np.array(g, dtype=np.float64).reshape(-1, 4) for g in gts])


@PROPS
@given(box_sets(), st.sampled_from([0.1, 0.3, 0.5, 0.75, 1.0]), st.sampled_from(["coco", "all_points"]), transforms)
def test_box_metrics_in_unit_interval_consistent_and_score_order_only(data, iou, interpolation, name):
    """box_metrics: precision, recall, F1 and AP lie in [0, 1], the counts add up to the
    numbers of boxes, and a strictly increasing transform of the prediction scores changes
    nothing; detection_metrics and evaluate_boxes agree with it."""
    preds, gts = data
    result = box_metrics(preds, gts, iou, interpolation)
    for key in ("precision", "recall", "f1", "average_precision"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["true_positives"] + result["false_positives"] == sum(len(p) for p in preds)
    assert result["true_positives"] + result["false_negatives"] == sum(len(g) for g in gts)
    moved_scores = apply(name, [p[:, 4] for p in preds])  # one transform over all images' scores
    moved = [np.column_stack([p[:, :4], s]) for p, s in zip(preds, moved_scores)]
    assert box_metrics(moved, gts, iou, interpolation) == result
    summary = detection_metrics(preds, gts)
    for key in ("precision", "recall", "f1", "ap50", "ap50_95", "recall_iou30"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["count_error"] == np.mean([abs(len(p) - len(g)) for p, g in zip(preds, gts)])
    protocol = evaluate_boxes(preds, gts, iou)
    assert {k: protocol[k] for k in box_metrics(preds, gts, iou)} == box_metrics(preds, gts, iou)


@PROPS
@given(box_sets(), st.sampled_from([0.5, 0.95, 1.0]), st.sampled_from(["coco", "all_points"]))
def test_predicting_the_ground_truth_is_perfect(data, iou, interpolation):
    """Predictions that are exactly the ground-truth boxes of positive area (any scores)
    give precision, recall, F1 and AP 1.0 at any IoU threshold."""
    _, gts = data
    gts = [g[(g[:, 2] > g[:, 0]) & (g[:, 3] > g[:, 1])] for g in gts]
    if not any(len(g) for g in gts):
        gts[0] = np.array([[1.0, 1.0, 3.0, 4.0]])
    preds = [np.column_stack([g, np.arange(len(g), dtype=np.float64)]) if len(g) else np.zeros((0, 5)) for g in gts]
    result = box_metrics(preds, gts, iou, interpolation)
    assert (result["precision"], result["recall"], result["f1"], result["average_precision"]) == (1.0, 1.0, 1.0, 1.0)


@PROPS
@given(box, st.lists(box, min_size=1, max_size=6))
def test_box_iou_in_unit_interval_symmetric_and_one_on_itself(one, others):
    """box_iou lies in [0, 1], is symmetric, and is 1 for a box of positive area with itself."""
    one, others = np.array(one, dtype=np.float64), np.array(others, dtype=np.float64)
    values = box_iou(one, others)
    assert np.all((0.0 <= values) & (values <= 1.0))
    for k, other in enumerate(others):
        assert box_iou(other, one[None])[0] == pytest.approx(values[k], abs=1e-12)
    if one[2] > one[0] and one[3] > one[1]:
        assert box_iou(one, one[None])[0] == 1.0


# ---------------------------------------------------------------------------------------------
# Readers: strategies for junk folders


def _encode(ext: str, image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()


tiny_images = st.builds(
    lambda h, w, c, seed: np.random.default_rng(seed).integers(0, 256, size=(h, w) if c == 1 else (h, w, c), dtype=np.uint8),
    st.integers(1, 5), st.integers(1, 5), st.sampled_from([1, 3, 4]), st.integers(0, 2**32 - 1))
formats = st.sampled_from([".png", ".jpg", ".bmp", ".tif"])
encoded = st.builds(_encode, formats, tiny_images)


def _set_size(data: bytes, width: int, height: int, fix_crc: bool) -> bytes:
    """``data`` (a PNG, BMP, JPEG or TIFF of cv2.imencode) with its header declaring
    ``width`` x ``height`` (pixel data left as it is)."""
    out = bytearray(data)
    if data.startswith(b"\x89PNG"):
        out[16:24] = struct.pack(">II", width, height)
        if fix_crc:
            out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif data.startswith(b"BM"):
        out[18:26] = struct.pack("<ii", width, height)
    elif data.startswith(b"\xff\xd8"):
        at = 2
        while at + 9 <= len(out) and out[at] == 0xFF:
            if out[at + 1] in (0xC0, 0xC1, 0xC2):
                out[at + 5:at + 9] = struct.pack(">HH", min(height, 65535), min(width, 65535))
                break
            at += 2 + int.from_bytes(out[at + 2:at + 4], "big")
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        order = "<" if data[:2] == b"II" else ">"
        at = struct.unpack(order + "I", data[4:8])[0]
        for entry in range(struct.unpack(order + "H", data[at:at + 2])[0]):
            start = at + 2 + 12 * entry
            tag, kind = struct.unpack(order + "HH", data[start:start + 4])
            if tag in (256, 257):
                value = width if tag == 256 else height
                out[start + 8:start + 12] = (struct.pack(order + "HH", min(value, 65535), 0) if kind == 3
                                             else struct.pack(order + "I", value))
    return bytes(out)


#: Largest side a header declares here (past dfr.data.io.MAX_IMAGE_SIDE, OpenCV's 2**20).
MAX_DECLARED_SIDE = 2**24
#: Most pixels a header declares here (decoding garbage into them takes time and memory).
MAX_DECLARED_PIXELS = 2**22
#: Boundary sides (8 and 16 bit fields, OpenCV's 2**20 per side) and any side up to the limit.
sides = st.one_of(st.sampled_from([s for s in (0, 1, 2, 255, 256, 65535, 65536, 2**20 - 1, 2**20, 2**20 + 1, 2**21)
                                   if s <= MAX_DECLARED_SIDE]),
                  st.integers(0, MAX_DECLARED_SIDE))


@st.composite
def resized_headers(draw):
    """A real tiny image whose header declares another size (sides up to MAX_DECLARED_SIDE,
    at most MAX_DECLARED_PIXELS pixels), the pixel data left as it is."""
    long, short = draw(sides), draw(st.integers(0, 3) | sides)  # thin images pass pixel limits
    if long * short > MAX_DECLARED_PIXELS:
        short = MAX_DECLARED_PIXELS // long
    width, height = (long, short) if draw(st.booleans()) else (short, long)
    return _set_size(draw(encoded), width, height, draw(st.booleans()))


@st.composite
def corrupted(draw):
    """A real tiny image with some bytes overwritten, then perhaps truncated."""
    data = bytearray(draw(encoded))
    for _ in range(draw(st.integers(1, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF89a", b"P5\n", b"P6\n",
          b"RIFF\x00\x00\x00\x00WEBP", b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"#?RADIANCE\n"]

#: Contents of a file: (kind, bytes). "valid" files must decode.
contents = st.one_of(
    st.tuples(st.just("junk"), st.binary(max_size=300)),
    st.tuples(st.just("junk"), st.builds(lambda m, b: m + b, st.sampled_from(MAGICS), st.binary(max_size=300))),
    st.tuples(st.just("junk"), st.just(b"")),
    st.tuples(st.just("junk"), st.text(max_size=80).map(lambda t: t.encode())),
    st.tuples(st.just("valid"), encoded),
    st.tuples(st.just("junk"), encoded.flatmap(lambda d: st.integers(0, len(d) - 1).map(lambda n: d[:n]))),
    st.tuples(st.just("junk"), corrupted()),
    st.tuples(st.just("junk"), resized_headers()),
)

#: File name stems: no dots, so the suffix is exactly the one drawn; spaces and non-ASCII
#: letters, (Unicode Nd) digits and a superscript digit (which str.isdigit() accepts) included.
stems = st.text(alphabet=string.ascii_letters + string.digits + "_- é٣中²", min_size=1, max_size=10)
suffixes = st.sampled_from(list(IMAGE_SUFFIXES) + [s.upper() for s in IMAGE_SUFFIXES]
                           + [".Png", ".JpG", ".txt", ".gif", ".png.txt", ".npy", ""])
prefixes = st.sampled_from(["", "", "", ".", "._"])


@st.composite
def folder_specs(draw, max_entries=8):
    """Entries of a folder: (name, "file", kind, bytes) or (name, "dir", None, None), unique names."""
    entries, names = [], set()
    for _ in range(draw(st.integers(0, max_entries))):
        name = draw(prefixes) + draw(stems) + draw(suffixes)
        if name in names or name in (".", ".."):
            continue
        names.add(name)
        if draw(st.integers(0, 7)) == 0:
            entries.append((name, "dir", None, None))
        else:
            kind, data = draw(contents)
            entries.append((name, "file", kind, data))
    return entries


def _build(folder: Path, entries) -> None:
    for name, what, _, data in entries:
        path = folder / name
        if what == "dir":
            path.mkdir()
            (path / "inner.png").write_bytes(_encode(".png", np.zeros((2, 2), np.uint8)))
        else:
            path.write_bytes(data)


def _listed(entries) -> set[str]:
    """Names list_images must return: visible files whose suffix is an image suffix (any case)."""
    return {name for name, what, _, _ in entries
            if what == "file" and not name.startswith(".") and any(name.lower().endswith(s) for s in IMAGE_SUFFIXES)}


def check_read(path: Path, valid: bool):
    """read_image(path): an image by the channel rule, or ValueError/OSError naming ``path``.
    Returns the image or None."""
    try:
        image = read_image(path)
    except (ValueError, OSError) as error:
        assert str(path) in str(error), f"error does not name the file: {error!r}"
        assert not valid, f"a valid image failed to decode: {error!r}"
        return None
    assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] in (1, 3), image.shape
    assert image.shape[0] >= 1 and image.shape[1] >= 1
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    return image


# ---------------------------------------------------------------------------------------------
# Readers: properties


@settings(PROPS, max_examples=100)
@given(folder_specs())
def test_list_images_lists_exactly_the_visible_image_files(entries):
    """list_images returns exactly the visible files (not subfolders, not names starting with a
    dot) whose suffix is an image suffix in any letter case, in natural order; with none it
    raises ValueError naming the folder."""
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        _build(folder, entries)
        expected = _listed(entries)
        if not expected:
            with pytest.raises(ValueError, match="no images found"):
                list_images(folder)
            return
        listed = list_images(folder)
        assert all(p.parent == folder for p in listed)
        assert sorted(p.name for p in listed) == sorted(expected)
        keys = [natural_key(p.name) for p in listed]
        assert keys == sorted(keys)


@settings(PROPS, max_examples=300)
@given(contents, suffixes)
@example(("junk", b""), ".png")
@example(("junk", b"\x89PNG\r\n\x1a\n"), ".png")
@example(("junk", b"BM" + b"\x00" * 60), ".bmp")
def test_read_image_returns_an_image_or_names_the_file(content, suffix):
    """For any file content (junk, magic bytes + junk, empty, text, real tiny images, truncated,
    corrupted or with a header declaring another size) under any suffix, read_image returns
    float32 (H, W, C in {1, 3}) in [0, 1] or raises ValueError/OSError naming the file; a real
    image always decodes, whatever its suffix."""
    kind, data = content
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"file name{suffix}"
        path.write_bytes(data)
        check_read(path, valid=kind == "valid")


@settings(PROPS, max_examples=100)
@given(resized_headers(), suffixes)
def test_read_image_header_declaring_another_size_names_the_file(data, suffix):
    """A real tiny PNG, JPEG, BMP or TIFF whose header declares another size (0, thin, wide,
    up to MAX_DECLARED_SIDE per side) gives an image by the channel rule or a ValueError/OSError
    naming the file."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"header{suffix}"
        path.write_bytes(data)
        check_read(path, valid=False)


@PROPS
@given(tiny_images, st.sampled_from([".png", ".bmp", ".tif", ".PNG"]), stems)
def test_read_image_round_trips_lossless_images(image, ext, stem):
    """A tiny uint8 image written with cv2.imwrite as PNG, BMP or TIFF reads back as its own
    pixels / 255: gray as C = 1, BGR(A) as RGB with alpha dropped."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"{stem}{ext}"
        assert cv2.imwrite(str(path), image)
        got = read_image(path)
    expected = image[:, :, None] if image.ndim == 2 else image[:, :, 2::-1]
    np.testing.assert_array_equal(got, expected.astype(np.float32) / 255.0)


@settings(PROPS, max_examples=75)
@given(folder_specs())
def test_load_images_and_image_dataset_on_junk_folders(entries):
    """load_images(folder) returns the listed images in order or raises ValueError/OSError
    naming an undecodable file (the first one in listing order); ImageDataset(folder) has one
    item per listed file, each an image or such an error naming that file."""
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        _build(folder, entries)
        if not _listed(entries):
            with pytest.raises(ValueError, match="no images found"):
                load_images(folder)
            with pytest.raises(ValueError, match="no images found"):
                ImageDataset(folder)
            return
        kinds = {name: kind for name, what, kind, _ in entries if what == "file"}
        paths = list_images(folder)
        singles = [check_read(p, valid=kinds[p.name] == "valid") for p in paths]
        failed = [p for p, image in zip(paths, singles) if image is None]
        if failed:
            with pytest.raises((ValueError, OSError)) as info:
                load_images(folder)
            assert str(failed[0]) in str(info.value)
        else:
            images, names = load_images(folder)
            assert names == [p.name for p in paths]
            for got, single in zip(images, singles):
                np.testing.assert_array_equal(got, single)
        dataset = ImageDataset(folder)
        assert len(dataset) == len(paths) and dataset.item_names() == [p.name for p in paths]
        for index, (path, single) in enumerate(zip(paths, singles)):
            if single is None:
                with pytest.raises((ValueError, OSError)) as info:
                    dataset[index]
                assert str(path) in str(info.value)
            else:
                np.testing.assert_array_equal(dataset[index], single)


# ---------------------------------------------------------------------------------------------
# Reader bugs that the properties above found once, kept as examples.


def test_list_images_with_superscript_digit_names():
    """A file named '²0.png' or '1²1.png' is listed (natural_key must not crash on characters
    that str.isdigit() accepts but int() does not, such as superscript digits)."""
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "²0.png").write_bytes(b"x")
        assert [p.name for p in list_images(directory)] == ["²0.png"]
        (Path(directory) / "1²1.png").write_bytes(b"x")
        assert sorted(p.name for p in list_images(directory)) == ["1²1.png", "²0.png"]


#: A 54-byte BMP header (BITMAPINFOHEADER, 24 bit) declaring 1 x 2 000 000 pixels, no pixel data.
TALL_BMP = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<iiiHHIIiiII", 40, 1, 2_000_000, 1, 24, 0, 0, 0, 0, 0, 0)


def test_read_image_bmp_declaring_a_tall_image_names_the_file():
    """A BMP whose header declares 1 x 2 000 000 pixels (under MAX_IMAGE_PIXELS) is refused
    with a ValueError naming the file."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "tall.bmp"
        path.write_bytes(TALL_BMP)
        check_read(path, valid=False)
