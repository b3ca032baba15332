import dataclasses

import numpy as np
import pytest
import torch

import dfr
from dfr.api import registry
from dfr.api.model import AnomalyModel
from dfr.metrics import box_iou
from dfr.scoring import (
    ScoringSettings,
    boxes_from_mask,
    detect,
    fit_threshold,
    heatmap_range,
    image_score,
    image_scores,
    merge_boxes,
    non_maximum_suppression,
    normalise_positions,
    position_scale,
    score_statistics,
    smooth,
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
                         ({"image_score": "median"}, "image_score must be one of 'max', 'mean', 'top_mean'"), ({"top_fraction": 0}, "top_fraction"),
                         ({"min_box_area": 2.5}, "min_box_area"), ({"sigma": 2}, "unknown scoring settings")]:
        with pytest.raises(ValueError, match=message):
            ScoringSettings.coerce(bad)
    with pytest.raises(TypeError, match="scoring must be"):
        ScoringSettings.coerce(0.005)


# every box step off: the tests below switch on the one they check
BARE = dict(seed_ratio=1.0, opening=0.0, closing=0.0, peak_fraction=0.0, min_box_area=0.0, merge_gap=None, nms_iou=1.0)


def test_hysteresis_keeps_only_components_with_a_seed():
    anomaly_map = np.zeros((20, 20), np.float32)
    anomaly_map[2:6, 2:6] = 1.5     # above the threshold 1, below the seed level 0 + 2 * (1 - 0) = 2
    anomaly_map[10:14, 10:14] = 1.5
    anomaly_map[12, 12] = 3.0       # the seed of the second component
    settings = ScoringSettings(**BARE | {"seed_ratio": 2.0})
    mask, boxes = detect(anomaly_map, 1.0, settings, floor=0.0)
    assert mask.sum() == 16 and mask[12, 12] and not mask[3, 3]
    assert boxes.tolist() == [[10, 10, 14, 14, 3.0]]
    _, both = detect(anomaly_map, 1.0, ScoringSettings(**BARE))
    assert len(both) == 2


def test_opening_removes_thin_lines_and_closing_joins_fragments():
    anomaly_map = np.zeros((100, 100), np.float32)
    anomaly_map[50, 5:95] = 2.0           # a one-pixel line (a lane rope)
    anomaly_map[10:20, 10:20] = 2.0       # two blobs 2 px apart
    anomaly_map[10:20, 22:32] = 2.0
    plain = ScoringSettings(**BARE)
    assert len(detect(anomaly_map, 1.0, plain)[1]) == 3
    opened = dataclasses.replace(plain, opening=0.03)   # a 3-pixel disk
    boxes = detect(anomaly_map, 1.0, opened)[1]
    assert len(boxes) == 2 and all(box[3] - box[1] >= 10 for box in boxes)
    closed = dataclasses.replace(opened, closing=0.05)  # a 5-pixel disk bridges the 2-pixel gap
    assert detect(anomaly_map, 1.0, closed)[1][:, :4].tolist() == [[10, 10, 32, 20]]


def test_min_box_area_is_a_fraction_of_the_image():
    anomaly_map = np.zeros((100, 100), np.float32)
    anomaly_map[0:3, 0:3] = 2.0      # 9 px = 0.0009 of the image
    anomaly_map[50:54, 50:54] = 2.0  # 16 px
    assert len(detect(anomaly_map, 1.0, ScoringSettings(**BARE | {"min_box_area": 0.0009}))[1]) == 2
    assert detect(anomaly_map, 1.0, ScoringSettings(**BARE | {"min_box_area": 0.001}))[1][:, :4].tolist() == [[50, 50, 54, 54]]


def test_peak_cut_shrinks_a_blurred_blob_and_splits_touching_objects():
    anomaly_map = np.zeros((30, 60), np.float32)
    anomaly_map[5:25, 5:45] = 1.5      # the blur around two objects, above the threshold 1
    anomaly_map[10:20, 10:20] = 4.0    # a strong object
    anomaly_map[12:18, 30:40] = 3.0    # a weaker one, touching it through the blur
    whole = detect(anomaly_map, 1.0, ScoringSettings(**BARE))[1]
    assert whole[:, :4].tolist() == [[5, 5, 45, 25]]
    # floor 0: each component keeps its pixels above 0.5 x its peak 4 = 2
    cut = detect(anomaly_map, 1.0, ScoringSettings(**BARE | {"peak_fraction": 0.5}), floor=0.0)[1]
    assert cut.tolist() == [[10, 10, 20, 20, 4.0], [30, 12, 40, 18, 3.0]]


def test_merge_boxes_by_hand():
    boxes = np.array([[0, 0, 10, 10, 0.5], [12, 0, 20, 10, 0.9], [23, 0, 30, 10, 0.7], [0, 40, 5, 45, 0.1]], float)
    # gaps: 2 px between the first two, 3 px between the second and third
    assert merge_boxes(boxes, 2).tolist() == [[0, 0, 20, 10, 0.9], [23, 0, 30, 10, 0.7], [0, 40, 5, 45, 0.1]]
    assert merge_boxes(boxes, 3).tolist() == [[0, 0, 30, 10, 0.9], [0, 40, 5, 45, 0.1]]  # transitive
    assert merge_boxes(boxes, 0).tolist() == boxes[[1, 2, 0, 3]].tolist()  # none touch: only sorted
    assert merge_boxes(np.zeros((0, 5)), 1).shape == (0, 5)


def test_non_maximum_suppression_by_hand():
    boxes = np.array([[0, 0, 10, 10, 0.5], [0, 0, 10, 8, 0.9], [20, 20, 30, 30, 0.7]], float)
    # IoU of the first two: 80 / 100 = 0.8
    assert non_maximum_suppression(boxes, 0.5).tolist() == [[0, 0, 10, 8, 0.9], [20, 20, 30, 30, 0.7]]
    assert len(non_maximum_suppression(boxes, 0.8)) == 3  # suppressed only above the IoU limit
    assert len(non_maximum_suppression(boxes, 1.0)) == 3


def test_nothing_outside_the_region_becomes_a_mask_pixel_or_box():
    anomaly_map = np.zeros((40, 40), np.float32)
    anomaly_map[5:10, 5:10] = 2.0
    anomaly_map[25:35, 25:35] = 2.0
    region = np.zeros((40, 40), bool)
    region[20:, 20:] = True
    mask, boxes = detect(anomaly_map, 1.0, ScoringSettings(**BARE | {"closing": 0.2}), region=region)
    assert not mask[~region].any() and boxes[:, :4].tolist() == [[25, 25, 35, 35]]


def test_settings_that_fixed_the_threshold_cannot_change_after_fitting():
    settings = ScoringSettings()
    assert settings.replace({"nms_iou": 0.3, "image_score": "max"}).nms_iou == 0.3
    assert settings.replace({"target_fpr": settings.target_fpr}) == settings  # unchanged is fine
    with pytest.raises(ValueError, match=r"\['smoothing_sigma'\] were fixed when the threshold was fitted"):
        settings.replace({"smoothing_sigma": 8.0})
    with pytest.raises(ValueError, match="unknown scoring settings"):
        settings.replace({"sigma": 8.0})
    for bad, message in [({"seed_ratio": 0.5}, "seed_ratio"), ({"opening": 1.5}, "opening"),
                         ({"merge_gap": -1}, "merge_gap"), ({"nms_iou": 0}, "nms_iou")]:
        with pytest.raises(ValueError, match=message):
            ScoringSettings.coerce(bad)


def test_position_scale_is_the_region_weighted_mean_raised_to_a_floor():
    ones = np.ones((50, 50), np.float32)
    assert np.allclose(position_scale([ones, 3 * ones]), 2.0)
    left = np.zeros((50, 50), bool)
    left[:, :25] = True
    scale = position_scale([4 * ones, 2 * ones], [left, np.ones((50, 50), bool)])
    assert np.allclose(scale[:, :20], 3.0) and np.allclose(scale[:, 30:], 2.0)  # (4 + 2) / 2 where both count
    stripe = 0.01 * ones
    stripe[20:30] = 1.0
    scale = position_scale([stripe])
    assert scale[25, 0] == pytest.approx(1.0, abs=0.01) and scale.min() == pytest.approx(0.01, abs=1e-4)
    assert np.all(position_scale([0 * ones]) == 1.0)
    with pytest.raises(ValueError, match="one size"):
        position_scale([ones, np.ones((40, 50), np.float32)])


def test_normalise_positions_divides_and_resizes_the_scale():
    anomaly_map = np.full((20, 40), 6.0, np.float32)
    assert np.allclose(normalise_positions(anomaly_map, np.full((20, 40), 2.0, np.float32)), 3.0)
    assert np.allclose(normalise_positions(anomaly_map, np.full((10, 20), 3.0, np.float32)), 2.0)


class MeanImageModel(AnomalyModel):
    """Test model: the map is the absolute difference from the mean training image."""

    def _fit(self, items):
        self.mean_ = np.mean(items, axis=0)

    def _maps(self, items):
        return [np.abs(item - self.mean_).mean(-1).astype(np.float32) for item in items]

    def _state(self):
        return {"mean": torch.from_numpy(self.mean_)}

    def _load_state(self, state):
        self.mean_ = state["mean"].numpy()


def _rope_scene(rng, defect=False):
    """A fixed camera: calm noise everywhere but a band of strong noise (a swaying rope)."""
    image = 0.5 + 0.02 * rng.standard_normal((64, 64, 1))
    image[28:34] = rng.uniform(0.0, 1.0, (6, 64, 1))
    if defect:
        image[6:18, 36:48] += 0.25
    return image.astype(np.float32)


def test_normalise_positions_finds_a_defect_that_a_noisy_band_outshines(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    train = [_rope_scene(rng) for _ in range(30)]
    test = [_rope_scene(rng, defect=True) for _ in range(4)]
    settings = {"smoothing_sigma": 1.0, "target_fpr": 0.001, "closing": 0.0, "peak_fraction": 0.0}
    plain = MeanImageModel(scoring=settings).fit(train)
    assert plain.position_scale_ is None
    assert all(len(boxes) == 0 for boxes in plain.predict(test).boxes)  # the band sets the threshold
    model = MeanImageModel(scoring={**settings, "normalise_positions": True}).fit(train)
    assert model.position_scale_.shape == (64, 64)
    assert model.position_scale_[30].mean() > 10 * model.position_scale_[10].mean()
    for boxes in model.predict(test).boxes:
        assert len(boxes) == 1 and box_iou(boxes[0, :4], np.array([[36, 6, 48, 18]]))[0] >= 0.5
    monkeypatch.setattr(registry, "_registered", {})
    with pytest.raises(ValueError, match="MeanImageModel is not a registered model: register it"):
        model.save(tmp_path / "model.dfr")
    dfr.register_model("mean-image-test", MeanImageModel)
    model.save(tmp_path / "model.dfr")
    loaded = MeanImageModel.load(tmp_path / "model.dfr")
    assert np.array_equal(loaded.position_scale_, model.position_scale_)
    assert np.array_equal(loaded.anomaly_map(test), model.anomaly_map(test))


def test_predict_iter_reads_in_batches_and_matches_predict(tmp_path):
    import cv2

    rng = np.random.default_rng(1)
    model = MeanImageModel(scoring={"normalise_positions": True}).fit([_rope_scene(rng) for _ in range(12)])
    test = [_rope_scene(rng, defect=index % 2 == 0) for index in range(5)]
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(test):
        cv2.imwrite(str(folder / f"t{index}.png"), np.round(image[:, :, 0] * 255).astype(np.uint8))
    regions = [np.ones((64, 64), bool)] * 4 + [np.zeros((64, 64), bool)]
    regions[4][:32] = True
    expected = model.predict(folder, region_masks=regions, scoring={"nms_iou": 0.3})
    items = list(model.predict_iter(folder, batch_size=2, region_masks=regions, scoring={"nms_iou": 0.3}))
    assert [item.name for item in items] == [f"t{index}.png" for index in range(5)]
    for index, item in enumerate(items):
        assert np.array_equal(item.anomaly_map, expected.anomaly_maps[index])
        assert np.array_equal(item.mask, expected.masks[index]) and np.array_equal(item.boxes, expected.boxes[index])
        assert item.score == expected.scores[index] and item.threshold == model.threshold_
    assert not items[4].mask[32:].any() and len(items[0].boxes) == 1
    masks = tmp_path / "masks"
    masks.mkdir()
    for index, region in enumerate(regions):
        cv2.imwrite(str(masks / f"m{index}.png"), region.astype(np.uint8) * 255)
    from_folder = list(model.predict_iter(folder, batch_size=4, region_masks=masks, scoring={"nms_iou": 0.3}))
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(from_folder, items))
    with pytest.raises(ValueError, match="3 region masks for 5 images"):
        next(model.predict_iter(folder, region_masks=regions[:3]))
    with pytest.raises(ValueError, match="batch_size"):
        model.predict_iter(folder, batch_size=0)  # refused at the call, before any result


def test_normalise_positions_refuses_mixed_sizes_before_training():
    model = MeanImageModel(scoring={"normalise_positions": True})
    with pytest.raises(ValueError, match="one size"):
        model.fit([np.zeros((32, 32, 1), np.float32)] * 3 + [np.zeros((32, 40, 1), np.float32)] * 2)
    assert not hasattr(model, "mean_")


def test_prediction_writer_keeps_dotted_names_and_refuses_repeated_ones(tmp_path):
    from dfr.api.prediction import ItemPrediction
    from dfr.outputs.writer import PredictionWriter

    def item(name):
        return ItemPrediction(name, np.zeros((8, 8), np.float32), 0.0, np.zeros((8, 8), bool), np.zeros((0, 5)), 1.0,
                              np.zeros((8, 8, 1), np.float32))

    with PredictionWriter(tmp_path / "out", (0.0, 2.0)) as writer:
        for name in ("cam.1_00000", "cam.1_00001", "frame.png"):
            writer.add(item(name))
    assert sorted(p.name for p in (tmp_path / "out" / "maps").iterdir()) == ["cam.1_00000.npy", "cam.1_00001.npy",
                                                                             "frame.npy"]
    with pytest.raises(ValueError, match="two results named 'frame'"):
        with PredictionWriter(tmp_path / "again", (0.0, 2.0)) as writer:
            writer.add(item("a/frame.png"))
            writer.add(item("b/frame.png"))
    assert not (tmp_path / "again").exists() and not list(tmp_path.glob(".again*"))
