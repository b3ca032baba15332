import numpy as np
import pytest

from dfr.scoring import (
    ScoringSettings, boxes_from_mask, fit_threshold, heatmap_range, image_score, image_scores, score_statistics, smooth,
)


def test_threshold_meets_target_fpr_on_held_out_normals():
    rng = np.random.default_rng(0)
    fit_maps = [rng.gamma(2.0, size=(64, 64)) for _ in range(20)]
    held_out = np.concatenate([rng.gamma(2.0, size=(64, 64)).ravel() for _ in range(40)])
    for target in (0.001, 0.005, 0.05):
        threshold = fit_threshold(fit_maps, target)
        own = np.mean(np.concatenate([m.ravel() for m in fit_maps]) > threshold)
        assert own <= target and own > target - 1e-4  # exact on the fitting maps (no ties)
        assert abs(np.mean(held_out > threshold) - target) < 0.3 * target + 2e-4


def test_threshold_with_ties_never_exceeds_target():
    maps = [np.array([[0.0, 0.0], [1.0, 1.0]])]
    threshold = fit_threshold(maps, 0.3)
    assert threshold == 1.0 and np.mean(maps[0] > threshold) == 0.0
    with pytest.raises(ValueError, match="target_fpr"):
        fit_threshold(maps, 0.0)


def test_boxes_from_connected_components_by_hand():
    anomaly_map = np.zeros((10, 12))
    mask = np.zeros((10, 12), bool)
    mask[1:3, 2:5] = True          # 6 pixels, box x 2..5, y 1..3
    anomaly_map[2, 3] = 0.9
    mask[6:9, 8:11] = True         # 9 pixels
    mask[9, 11] = True             # touches diagonally: same 8-connected component
    anomaly_map[7, 9] = 2.0
    mask[5, 0] = True              # 1 pixel: below the minimum area
    boxes = boxes_from_mask(mask, anomaly_map, min_area=2)
    assert boxes.tolist() == [[8, 6, 12, 10, 2.0], [2, 1, 5, 3, 0.9]]
    assert boxes_from_mask(np.zeros((4, 4), bool), np.zeros((4, 4)), 1).shape == (0, 5)


def test_heatmap_range_is_dataset_wide_with_threshold_mid_scale():
    stats = score_statistics([np.array([[0.0, 1.0], [2.0, 3.0]])])
    low, high = heatmap_range(stats, threshold=2.5)
    assert low == 1.5 and high == 3.5 and (low + high) / 2 == 2.5


def test_smoothing_keeps_the_mass_of_a_point_and_zero_turns_it_off():
    point = np.zeros((41, 41), np.float32)
    point[20, 20] = 1.0
    smoothed = smooth(point, 2.0)
    assert smoothed.sum() == pytest.approx(1.0, rel=1e-3)
    # a sampled 2-D Gaussian of sigma 2 peaks at about 1 / (2 pi sigma²)
    assert smoothed[20, 20] == pytest.approx(1 / (2 * np.pi * 4), rel=0.02)
    assert smoothed[20, 22] == pytest.approx(smoothed[20, 20] * np.exp(-0.5), rel=0.02)
    assert smooth(point, 0) is point


def test_image_scores_by_hand():
    anomaly_map = np.arange(100, dtype=np.float32).reshape(10, 10)
    assert image_score(anomaly_map, "max") == 99
    assert image_score(anomaly_map, "mean") == 49.5
    assert image_score(anomaly_map, "top_mean", 0.05) == 97  # mean of 95 … 99
    assert image_score(anomaly_map, "top_mean", 0.001) == 99  # at least one pixel
    settings = ScoringSettings(image_score="top_mean", top_fraction=0.02)
    assert image_scores([anomaly_map, anomaly_map + 1], settings).tolist() == [98.5, 99.5]


def test_scoring_settings_are_checked_up_front():
    assert ScoringSettings.coerce(None) == ScoringSettings()
    assert ScoringSettings.coerce({"target_fpr": 0.01}).target_fpr == 0.01
    for bad, message in [({"target_fpr": 1.0}, "target_fpr"), ({"smoothing_sigma": -1}, "smoothing_sigma"),
                         ({"image_score": "median"}, "image_score must be one of"), ({"top_fraction": 0}, "top_fraction"),
                         ({"min_box_area": 2.5}, "min_box_area"), ({"sigma": 2}, "unknown scoring settings")]:
        with pytest.raises(ValueError, match=message):
            ScoringSettings.coerce(bad)
    with pytest.raises(TypeError, match="scoring must be"):
        ScoringSettings.coerce(0.005)
