"""Video metrics (frame AUC, EER, regularity) and box metrics against hand-computed values."""
import numpy as np
import pytest

from dfr.api.prediction import Prediction
from dfr.metrics import (
    box_metrics,
    detection_metrics,
    eer,
    evaluate_boxes,
    evaluate_video,
    frame_auc,
    regularity_score,
)

# Clip 0: anomalous 0.35 beats normal 0.1 only, 0.8 beats both: AUC 3/4.
# Clip 1: the anomalous 0.9 beats both normals: AUC 1.
# Clip 2: normal frames only (skipped in macro).
SCORES = [np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.2, 0.9, 0.5]), np.array([0.3, 0.6])]
LABELS = [np.array([0, 0, 1, 1]), np.array([0, 1, 0]), np.array([0, 0])]


def test_frame_auc_micro_and_macro_by_hand():
    # micro: normals 0.1 0.4 0.2 0.5 0.3 0.6; anomalous 0.35 beats 3 of 6, 0.8 and 0.9 all 6: 15/18
    assert frame_auc(SCORES, LABELS) == pytest.approx(15 / 18)
    with pytest.warns(UserWarning, match=r"skipped clips \[2\], whose frames are all of one class"):
        assert frame_auc(SCORES, LABELS, mode="macro") == pytest.approx((0.75 + 1.0) / 2)


def test_misaligned_lengths_raise():
    with pytest.raises(ValueError, match="clip 1 has 3 scores but 4 labels"):
        frame_auc(SCORES, [LABELS[0], np.array([0, 1, 0, 0]), LABELS[2]])
    with pytest.raises(ValueError, match="scores for 3 clips but labels for 2"):
        eer(SCORES, LABELS[:2])
    with pytest.raises(ValueError, match="wrap a single clip in a list"):
        frame_auc(SCORES[0], LABELS[0])
    with pytest.raises(ValueError, match="mode must be"):
        frame_auc(SCORES, LABELS, mode="weighted")


def test_one_class_everywhere_raises():
    with pytest.raises(ValueError, match="one class: all 5 frames are normal"):
        frame_auc([np.arange(5.0)], [np.zeros(5)])
    with pytest.raises(ValueError, match="every one of the 1 clips"):
        eer([np.arange(5.0)], [np.ones(5)], mode="macro")


def test_eer_by_hand():
    # ROC points (0,0) (0,.5) (.5,.5) (.5,1) (1,1): FPR = FNR = 0.5 at the third point
    assert eer([SCORES[0]], [LABELS[0]]) == pytest.approx(0.5)
    # scores 0.9 (a), 0.5 (n), 0.5 (a), 0.1 (n): the tie makes a diagonal from (0, .5) to (.5, 1);
    # FPR = t/2 and FNR = (1 - t)/2 meet at t = 1/2: EER 0.25, between two ROC points
    assert eer([np.array([0.9, 0.5, 0.5, 0.1])], [np.array([1, 0, 1, 0])]) == pytest.approx(0.25)
    # perfect separation: 0
    assert eer([np.array([0.1, 0.2, 0.8])], [np.array([0, 0, 1])]) == 0.0


def test_eer_macro_is_the_mean_over_usable_clips():
    with pytest.warns(UserWarning, match="skipped clips"):
        value = eer(SCORES, LABELS, mode="macro")
    assert value == pytest.approx((0.5 + 0.0) / 2)


def test_regularity_score_of_the_source_notebooks():
    np.testing.assert_allclose(regularity_score([2.0, 4.0, 10.0]), [1.0, 0.8, 0.2])
    np.testing.assert_array_equal(regularity_score(np.zeros(3)), np.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        regularity_score([1.0, -1.0])


def test_normalisation_is_off_by_default_and_recorded():
    plain = evaluate_video(SCORES, LABELS)
    assert plain["normalisation"] == "none" and plain["mode"] == "micro"
    assert plain["frame_auc"] == pytest.approx(15 / 18) and plain["eer"] == pytest.approx(eer(SCORES, LABELS))
    assert (plain["clips"], plain["frames"], plain["anomalous_frames"], plain["skipped_clips"]) == (3, 9, 3, [])
    normalised = evaluate_video(SCORES, LABELS, normalise=True)
    assert normalised["normalisation"] == "per-clip min-max (leaks test statistics)"
    by_hand = [(s - s.min()) / (s.max() - s.min()) for s in SCORES]
    assert normalised["frame_auc"] == pytest.approx(frame_auc(by_hand, LABELS))
    # clip 2 becomes [0, 1]: its normal frame at 1 now ties with the anomalous maxima
    assert normalised["frame_auc"] != pytest.approx(plain["frame_auc"])


def test_evaluate_video_macro_records_skipped_clips():
    with pytest.warns(UserWarning, match=r"evaluate_video \(macro\): skipped clips \[2\]"):
        result = evaluate_video(SCORES, LABELS, mode="macro")
    assert result["skipped_clips"] == [2] and result["mode"] == "macro"
    assert result["frame_auc"] == pytest.approx(0.875) and result["eer"] == pytest.approx(0.25)


def test_video_metrics_invariant_to_increasing_transforms():
    rng = np.random.default_rng(0)
    scores = [np.round(rng.random(30), 1) for _ in range(4)]
    labels = [rng.random(30) < 0.3 for _ in range(4)]
    moved = [np.exp(3 * s) + 2 for s in scores]
    for mode in ("micro", "macro"):
        assert frame_auc(moved, labels, mode) == pytest.approx(frame_auc(scores, labels, mode), abs=1e-12)
        assert eer(moved, labels, mode) == pytest.approx(eer(scores, labels, mode), abs=1e-12)


GT = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 4, 4]])]
PRED = [
    np.array([[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.8], [50, 50, 60, 60, 0.7]]),
    np.array([[0, 0, 4, 2, 0.85]]),  # IoU 8/16 = 0.5 exactly: a match at iou=0.5
]


def test_box_metrics_by_hand():
    result = box_metrics(PRED, GT)
    # ranked: 0.9 TP, 0.85 TP, 0.8 FP (its gt is taken; IoU 81/119 with it), 0.7 FP
    assert (result["true_positives"], result["false_positives"], result["false_negatives"]) == (2, 2, 1)
    assert result["precision"] == pytest.approx(0.5)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(4 / 7)
    # recall 1/3 and 2/3 at precision 1, then no more: COCO averages the 101 recalls 0, 0.01, …, 1,
    # of which 0 … 0.66 (67 of them) are reached at precision 1
    assert result["average_precision"] == pytest.approx(67 / 101)
    assert box_metrics(PRED, GT, interpolation="all_points")["average_precision"] == pytest.approx(2 / 3)
    strict = box_metrics(PRED, GT, iou=0.51)
    assert strict["true_positives"] == 1


def test_greedy_matching_goes_by_score_not_by_iou():
    gt = [np.array([[0, 0, 10, 10]])]
    pred = [np.array([[0, 0, 10, 8, 0.9], [0, 0, 10, 10, 0.5]])]  # IoU 0.8 first, then the exact box
    result = box_metrics(pred, gt)
    assert (result["true_positives"], result["false_positives"]) == (1, 1)


def test_prediction_takes_the_unmatched_gt_of_highest_iou():
    gt = [np.array([[0, 0, 10, 10], [3, 0, 13, 10]])]
    # the first prediction overlaps gt 0 with IoU 80/120 and gt 1 with IoU 90/110: it takes gt 1,
    # which leaves gt 0 to the second (IoU 0.8; with gt 1 only 50/130)
    pred = [np.array([[2, 0, 12, 10, 0.9], [0, 0, 8, 10, 0.8]])]
    assert box_metrics(pred, gt)["true_positives"] == 2
    # a prediction whose best ground truth is taken still matches another one above the threshold
    gt = [np.array([[0, 0, 10, 10], [2, 0, 12, 10]])]
    pred = [np.array([[0, 0, 10, 10, 0.9], [1, 0, 11, 10, 0.8]])]  # the second: IoU 9/11 with both
    assert box_metrics(pred, gt)["true_positives"] == 2


def test_average_precision_uses_all_points_interpolation():
    gt = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]])]
    pred = [np.array([[50, 50, 60, 60, 0.9], [0, 0, 10, 10, 0.8]]), np.array([[0, 0, 10, 10, 0.7]])]
    # ranked FP, TP, TP: precision 0, 1/2, 2/3 at recall 0, 1/2, 1; the envelope is 2/3 throughout
    # (the step-wise non-interpolated sum would be 1/2 * 1/2 + 1/2 * 2/3 = 0.583)
    assert box_metrics(pred, gt, interpolation="all_points")["average_precision"] == pytest.approx(2 / 3)
    assert box_metrics(pred, gt)["average_precision"] == pytest.approx(2 / 3)  # COCO: 2/3 at all 101 recalls
    with pytest.raises(ValueError, match="interpolation must be one of"):
        box_metrics(pred, gt, interpolation="voc")


def test_detection_metrics_by_hand():
    gt = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.zeros((0, 4))]
    pred = [
        np.array([[0, 0, 10, 10, 0.9]]),    # exact: a hit at every IoU
        np.array([[0, 0, 10, 6.2, 0.8]]),   # IoU 0.62: a hit at IoU 0.50, 0.55, 0.60; [20, 20, 30, 30] is missed
        np.array([[40, 40, 50, 50, 0.7]]),  # a false positive in an image without any true box
    ]
    result = detection_metrics(pred, gt)
    assert (result["precision"], result["recall"]) == pytest.approx((2 / 3, 2 / 3))
    assert result["f1"] == pytest.approx(2 / 3)
    # IoU 0.5, 0.55, 0.6: ranked TP, TP, FP → precision 1 up to recall 2/3 → 67 of 101 recalls
    # IoU 0.65 … 0.95: TP, FP, FP → precision 1 up to recall 1/3 → 34 of 101 recalls
    assert result["ap50"] == pytest.approx(67 / 101)
    assert result["ap50_95"] == pytest.approx((3 * 67 / 101 + 7 * 34 / 101) / 10)
    assert result["recall_iou30"] == pytest.approx(2 / 3)
    assert result["count_error"] == pytest.approx((0 + 1 + 1) / 3)


def test_box_edge_cases():
    empty = box_metrics([np.zeros((0, 5)), []], GT)
    assert empty["precision"] == empty["recall"] == empty["f1"] == empty["average_precision"] == 0.0
    assert empty["false_negatives"] == 3
    with pytest.raises(ValueError, match="at least one ground-truth box"):
        box_metrics(PRED, [np.zeros((0, 4)), np.zeros((0, 4))])
    with pytest.raises(ValueError, match=r"pred_boxes of image 1 must be an array \(k, 5\), got shape \(1, 4\)"):
        box_metrics([PRED[0], np.array([[0, 0, 4, 4]])], GT)
    with pytest.raises(ValueError, match="for 1 images but ground truth for 2"):
        box_metrics(PRED[:1], GT)


def test_evaluate_boxes_takes_a_prediction_and_records_the_protocol():
    prediction = Prediction(np.zeros((2, 64, 64), np.float32), np.zeros(2), np.zeros((2, 64, 64), bool), PRED, 0.5)
    result = evaluate_boxes(prediction, GT)
    assert result["precision"] == pytest.approx(0.5) and result["iou_threshold"] == 0.5
    assert (result["images"], result["predictions"], result["ground_truth"]) == (2, 4, 3)
    assert "greedy" in result["matching"] and "COCO" in result["ap_interpolation"]
    assert evaluate_boxes(PRED, GT, iou=0.3)["iou_threshold"] == 0.3
