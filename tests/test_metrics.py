"""Image metrics: PRO-AUC against a brute-force reference and hand-computed cases, ROC-AUC, AP,
evaluate_images. Video and box metrics: test_metrics_video_boxes.py."""
import cv2
import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from dfr.api.prediction import Prediction
from dfr.metrics import (
    average_precision,
    evaluate_images,
    image_auroc,
    pixel_auroc,
    pro_auc,
    pro_curve,
)


def brute_force_pro_auc(maps, masks, limit=0.3):
    """PRO-AUC the slow, literal way: at every distinct score t, the FPR over all normal pixels
    and the mean over all 8-connected regions of the fraction of the region with score >= t;
    then trapezoids up to the limit, interpolated there, divided by the limit."""
    regions = []
    for index, mask in enumerate(masks):
        labelled, count = ndimage.label(np.asarray(mask) > 0, structure=np.ones((3, 3)))
        regions += [(index, labelled == label) for label in range(1, count + 1)]
    normal = [np.asarray(mask) <= 0 for mask in masks]
    n_normal = sum(int(n.sum()) for n in normal)
    points = [(0.0, 0.0)]
    for t in sorted({float(v) for m in maps for v in np.ravel(m)}, reverse=True):
        false_positives = sum(int(np.sum((m >= t) & n)) for m, n in zip(maps, normal))
        overlaps = [np.sum(maps[index][region] >= t) / region.sum() for index, region in regions]
        points.append((false_positives / n_normal, float(np.mean(overlaps))))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x1 >= limit:
            if x0 < limit:
                y = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
                area += (limit - x0) * (y0 + y) / 2
            break
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


def random_case(rng, n_images=3, max_side=9, levels=None):
    """Small maps and masks of random sizes with at least one region and one normal pixel;
    ``levels`` quantises the scores to force ties."""
    while True:
        shapes = [tuple(int(v) for v in rng.integers(2, max_side + 1, 2)) for _ in range(n_images)]
        masks = [(rng.random(shape) < rng.uniform(0, 0.4)) for shape in shapes]
        maps = [rng.random(shape) + rng.uniform(0, 1) * mask for shape, mask in zip(shapes, masks)]
        if levels:
            maps = [np.floor(m * levels) / levels for m in maps]
        total = sum(mask.sum() for mask in masks)
        if 0 < total < sum(mask.size for mask in masks):
            return maps, masks


@pytest.mark.parametrize("seed", range(40))
def test_pro_auc_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    maps, masks = random_case(rng, n_images=int(rng.integers(1, 5)), levels=[None, 4, 10][seed % 3])
    for limit in (0.3, 0.05, 1.0):
        assert pro_auc(maps, masks, fpr_limit=limit) == pytest.approx(brute_force_pro_auc(maps, masks, limit), abs=1e-9)


def test_pro_curve_points():
    maps, masks = random_case(np.random.default_rng(1), levels=5)
    fpr, pro, thresholds = pro_curve(maps, masks)
    assert (fpr[0], pro[0], thresholds[0]) == (0.0, 0.0, np.inf)
    assert (fpr[-1], pro[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0) and np.all(np.diff(thresholds) < 0)
    # one point per distinct score: ties merged
    assert len(thresholds) == 1 + len(np.unique(np.concatenate([m.ravel() for m in maps])))


def test_perfect_map_gives_exactly_one():
    rng = np.random.default_rng(2)
    masks = np.zeros((4, 20, 20), dtype=np.uint8)
    for index, (y, x, h, w) in enumerate([(2, 3, 1, 1), (5, 5, 3, 7), (0, 0, 20, 1), (9, 9, 6, 5)]):
        masks[index, y:y + h, x:x + w] = 255  # 0/255 masks as read from MVTec AD files
    maps = rng.random(masks.shape) + 2.0 * (masks > 0)
    assert pro_auc(maps, masks) == 1.0
    assert pixel_auroc(maps, masks) == 1.0


def test_map_equal_to_mask_with_one_region_missed():
    mask = np.zeros((16, 16), dtype=bool)
    for y, x in [(1, 1), (1, 10), (10, 1), (10, 10)]:
        mask[y:y + 3, x:x + 4] = True
    anomaly_map = mask.astype(np.float32)
    anomaly_map[10:13, 10:14] = 0  # the fourth region scores like the background
    # curve (0, 0) -> (0, 3/4) -> (1, 1): PRO at FPR 0.3 is 3/4 + 0.3 / 4;
    # area / 0.3 = (3/4 + 3/4 + 0.3/4) / 2 = 0.7875
    assert pro_auc([anomaly_map], [mask]) == pytest.approx(0.7875, abs=1e-12)


def test_regions_of_very_different_size_count_equally():
    big, small = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    big[2:12, 2:12] = True  # 100 pixels
    small[5:7, 5:7] = True  # 4 pixels
    # find the big region only, then the small one only: PRO is 1/2 at FPR 0 either way
    # (region-averaged; pixel-averaged overlap would be 100/104 or 4/104)
    for found in ([big.astype(float), np.zeros((20, 20))], [np.zeros((20, 20)), small.astype(float)]):
        assert pro_auc(found, [big, small]) == pytest.approx(0.5 + 0.15 * 0.5, abs=1e-12)


def test_limit_between_two_curve_points_is_interpolated():
    # 10 normal pixels: 0.95, 0.8, 0.6, 0.6 and six at 0.1; one region of two pixels: 0.9, 0.6.
    anomaly_map = np.array([[0.95, 0.9, 0.6, 0.8], [0.6, 0.6, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]])
    mask = np.zeros((3, 4), bool)
    mask[0, 1:3] = True
    fpr, pro, _ = pro_curve([anomaly_map], [mask])
    np.testing.assert_allclose(fpr, [0, 0.1, 0.1, 0.2, 0.4, 1.0])
    np.testing.assert_allclose(pro, [0, 0, 0.5, 0.5, 1.0, 1.0])
    # 0.3 lies between (0.2, 0.5) and (0.4, 1.0): PRO there is 0.75;
    # area = 0.1 * 0.5 + 0.1 * (0.5 + 0.75) / 2 = 0.1125, / 0.3 = 0.375
    assert pro_auc([anomaly_map], [mask]) == pytest.approx(0.375, abs=1e-12)
    # the 0.6 tie of normal and anomalous pixels is one threshold: a diagonal segment
    assert pro_auc([anomaly_map], [mask], fpr_limit=0.4) == pytest.approx((0.05 + 0.15) / 0.4, abs=1e-12)


def test_regions_are_8_connected():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one region of two pixels
    mask[4, 4] = True
    anomaly_map = np.zeros((6, 6))
    anomaly_map[0, 0] = anomaly_map[4, 4] = 1.0
    _, pro, _ = pro_curve([anomaly_map], [mask])
    assert pro[1] == pytest.approx(0.75)  # mean(1/2, 1); 4-connected regions would give 2/3


def test_all_normal_test_set_raises():
    maps = np.random.default_rng(0).random((3, 8, 8))
    with pytest.raises(ValueError, match="all 3 masks are empty"):
        pro_auc(maps, np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="one class"):
        pixel_auroc(maps, np.zeros((3, 8, 8)))


def test_no_normal_pixel_raises():
    with pytest.raises(ValueError, match="normal pixels"):
        pro_auc(np.random.default_rng(0).random((2, 4, 4)), np.ones((2, 4, 4)))


@pytest.mark.parametrize("limit", [0.0, -0.1, 1.5])
def test_bad_limit_raises(limit):
    with pytest.raises(ValueError, match="fpr_limit"):
        pro_auc(*random_case(np.random.default_rng(0)), fpr_limit=limit)


def test_never_above_one():
    rng = np.random.default_rng(3)
    for case in range(300):
        maps, masks = random_case(rng, n_images=int(rng.integers(1, 6)), max_side=12, levels=[None, 3][case % 2])
        if case % 3 == 0:  # near-perfect maps, where rounding could push a sloppy sum above 1
            maps = [np.asarray(mask, float) * 10.0 + rng.random(mask.shape) * 1e-3 for mask in masks]
        for limit in (0.3, float(rng.uniform(1e-3, 1.0))):
            value = pro_auc(maps, masks, fpr_limit=limit)
            assert 0.0 <= value <= 1.0


def test_random_scores_give_about_limit_over_two():
    rng = np.random.default_rng(4)
    masks = np.zeros((30, 64, 64), np.uint8)
    for mask in masks[10:]:
        for _ in range(int(rng.integers(1, 4))):
            centre = tuple(int(v) for v in rng.integers(8, 56, 2))
            axes = tuple(int(v) for v in rng.integers(2, 10, 2))
            cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
    values = [pro_auc(rng.random(masks.shape, dtype=np.float32), masks) for _ in range(5)]
    assert np.mean(values) == pytest.approx(0.15, abs=0.005)


def test_strictly_increasing_transform_leaves_every_auc_unchanged():
    rng = np.random.default_rng(5)
    maps, masks = random_case(rng, n_images=4, max_side=10, levels=20)
    labels = [mask.any() for mask in masks]
    labels[0], labels[1] = True, False
    moved = [np.exp(4.0 * m) - 7.0 for m in maps]  # strictly increasing; the 1/20 steps stay distinct
    for limit in (0.3, 0.1, 1.0):
        assert pro_auc(moved, masks, limit) == pytest.approx(pro_auc(maps, masks, limit), abs=1e-12)
    assert pixel_auroc(moved, masks) == pytest.approx(pixel_auroc(maps, masks), abs=1e-12)
    assert average_precision(moved, masks) == pytest.approx(average_precision(maps, masks), abs=1e-12)
    assert image_auroc(moved, labels) == pytest.approx(image_auroc(maps, labels), abs=1e-12)


def test_differently_sized_maps_and_mask_binarisation():
    rng = np.random.default_rng(6)
    maps, masks = random_case(rng, n_images=3, max_side=15)
    as_uint8 = [mask.astype(np.uint8) * 255 for mask in masks]
    expected = brute_force_pro_auc(maps, masks)
    assert pro_auc(maps, as_uint8) == pytest.approx(expected, abs=1e-9)
    float32_maps = [m.astype(np.float32) for m in maps]
    assert pro_auc(float32_maps, masks) == pytest.approx(brute_force_pro_auc(float32_maps, masks), abs=1e-9)


def test_input_errors_say_what_differs():
    maps = [np.zeros((4, 4)), np.zeros((4, 5))]
    masks = [np.zeros((4, 4)), np.ones((5, 5))]
    with pytest.raises(ValueError, match=r"map 1 has shape \(4, 5\) but its mask has shape \(5, 5\)"):
        pro_auc(maps, masks)
    with pytest.raises(ValueError, match="got 2 maps but 1 masks"):
        pixel_auroc(maps, masks[:1])
    with pytest.raises(ValueError, match=r"got an array of shape \(4, 4\)"):
        pro_auc(np.zeros((4, 4)), np.zeros((4, 4)))
    bad = np.random.default_rng(0).random((2, 4, 4))
    bad[1, 2, 2] = np.nan
    with pytest.raises(ValueError, match="map 1 contains 1 NaN values"):
        pro_auc(bad, np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match="map 0 contains 4 infinite values"):
        average_precision([np.full((2, 2), np.inf)], [np.ones((2, 2))])


def test_pixel_auroc_and_average_precision_match_sklearn():
    maps, masks = random_case(np.random.default_rng(7), n_images=3, max_side=12, levels=6)
    labels = np.concatenate([m.ravel() for m in masks])
    scores = np.concatenate([m.ravel() for m in maps])
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(maps, masks) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    with pytest.raises(ValueError, match="no anomalous|without anomalous"):
        average_precision(maps, [np.zeros_like(m) for m in masks])


def test_image_auroc_uses_map_maximum_unless_scores_given():
    maps = [np.array([[0.1, 0.9]]), np.array([[0.5, 0.2]]), np.array([[0.3, 0.7]]), np.array([[0.0, 0.4]])]
    labels = [1, 0, 0, 1]  # maxima 0.9, 0.5, 0.7, 0.4: anomalous 0.9 beats both, 0.4 neither
    assert image_auroc(maps, labels) == pytest.approx(0.5)
    assert image_auroc(None, labels, scores=[0.9, 0.5, 0.7, 0.8]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not both"):
        image_auroc(maps, labels, scores=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="4 image scores but 3 labels"):
        image_auroc(maps, labels[:3])
    with pytest.raises(ValueError, match="one class: all 4 images are normal"):
        image_auroc(maps, [0, 0, 0, 0])


def _prediction(maps):
    scores = np.array([float(m.max()) for m in maps])
    return Prediction(maps, scores, [m > 0.5 for m in maps], [np.zeros((0, 5)) for _ in maps], 0.5)


def test_evaluate_images_reports_metrics_and_protocol():
    maps, masks = random_case(np.random.default_rng(8), n_images=4, max_side=10)
    masks[0] = np.zeros_like(masks[0])  # one good image
    result = evaluate_images(_prediction(maps), masks)
    assert result["pro_auc"] == pytest.approx(brute_force_pro_auc(maps, masks), abs=1e-9)
    assert result["pixel_auroc"] == pytest.approx(pixel_auroc(maps, masks))
    assert result["pixel_ap"] == pytest.approx(average_precision(maps, masks))
    labels = [mask.any() for mask in masks]
    assert result["image_auroc"] == pytest.approx(image_auroc(maps, labels))
    assert result["fpr_limit"] == 0.3
    assert result["images"] == 4 and result["anomalous_images"] == sum(labels)
    assert result["regions"] == sum(ndimage.label(m, np.ones((3, 3)))[1] for m in masks)
    assert result["resolution"].startswith("ground-truth mask resolution")
    assert "from masks" in result["labels"]


def test_evaluate_images_at_mask_resolution_only():
    maps = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    masks = np.zeros((2, 16, 16), bool)
    masks[1, 4:8, 4:8] = True
    with pytest.raises(ValueError, match=r"map 0 has shape \(8, 8\) but its mask has shape \(16, 16\)"):
        evaluate_images(_prediction(maps), masks)
    maps = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    result = evaluate_images(_prediction(maps), masks, fpr_limit=0.1)
    assert result["resolution"] == "ground-truth mask resolution (16x16, HxW)" and result["fpr_limit"] == 0.1


def test_evaluate_images_one_image_class_reports_none():
    maps, masks = random_case(np.random.default_rng(9), n_images=3)
    with pytest.warns(UserWarning, match="image_auroc is undefined: all 3 images are anomalous"):
        result = evaluate_images(_prediction(maps), masks, labels=[1, 1, 1])
    assert result["image_auroc"] is None and result["labels"] == "given"
