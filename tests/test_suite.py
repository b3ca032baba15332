import json

import numpy as np
import pytest

from dfr import DFR
from dfr.api.prediction import Prediction
from dfr.data import synthetic
from dfr.evaluation.models import BenchModel, bench_models
from dfr.evaluation.report import write_reports
from dfr.evaluation.suite import evaluate, run_suite
from dfr.evaluation.tasks import Task, mvtec_tasks, ucsd_task

pytestmark = pytest.mark.filterwarnings("ignore:VGG19 with random weights")


def _task(dataset, kind, test, labels, **fields):
    """A task over ``test`` whose ground truth the caller passes to ``evaluate`` itself."""
    items = test if kind == "image" else [frame for clip in test for frame in clip]
    return Task(dataset, "toy", kind, test=test, test_names=[f"item{i}" for i in range(len(test))],
                image_labels=np.asarray(labels, bool), mask_sources=[None] * len(items), training_data=list, **fields)


def _tiny_dfr(builds):
    def build(scoring, seed):
        builds.append(seed)
        return DFR(weights=None, image_size=32, layers=("relu1_2", "relu2_2", "relu3_4"), epochs=2, seed=seed)

    return BenchModel("tiny", "tiny DFR", ("mvtec", "pool", "ucsd"), build)


def test_suite_runs_reports_and_resumes(tmp_path):
    synthetic.write_mvtec_like(tmp_path / "data", categories=("brick",), n_train=6, n_test=4, size=48, seed=0)
    tasks = mvtec_tasks(tmp_path / "data")
    builds = []
    results = run_suite(tasks, [_tiny_dfr(builds)], tmp_path / "out")
    assert builds == [0] and results[0]["metrics"]["pixel_auroc"] > 0.5
    run = tmp_path / "out" / "runs" / "mvtec" / "brick" / "tiny"
    assert len(list((run / "predictions" / "masks").iterdir())) == 4
    again = run_suite(tasks, [_tiny_dfr(builds)], tmp_path / "out")
    assert builds == [0] and again == results  # resumed: read back, not refitted
    write_reports(results, tmp_path / "out", seed=0, settings={})
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    assert record["seed"] == 0 and "FPR limit 0.3" in record["protocol"]["pro_auc"]
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| tiny DFR |" in table and "mask resolution 48x48" in table
    assert (tmp_path / "out" / "plots" / "mvtec_brick_curves.png").is_file()
    assert "(runs/mvtec/brick/tiny/predictions/example.png)" in (tmp_path / "out" / "index.md").read_text()


def test_example_overlay_draws_the_true_boxes_of_the_largest_anomaly(tmp_path):
    import cv2

    from dfr.evaluation.suite import write_example

    paths = [tmp_path / f"{name}.png" for name in "ab"]
    for path in paths:
        cv2.imwrite(str(path), np.full((20, 30, 3), 128, np.uint8))
    masks = [np.zeros((20, 30), bool), np.zeros((20, 30), bool)]
    masks[1][5:9, 10:16] = True
    task = _task("mvtec", "image", paths, [False, True])
    maps = np.zeros((2, 20, 30), np.float32)
    prediction = Prediction(maps, np.zeros(2), maps > 1, [np.zeros((0, 5))] * 2, 1.0)
    write_example(task, prediction, masks, (0.0, 1.0), tmp_path / "example.png")

    picture = cv2.imread(str(tmp_path / "example.png"))
    cyan = np.all(picture == (255, 255, 0), axis=2)
    assert cyan[5, 10:16].all() and cyan[8, 10:16].all() and cyan[5:9, 10].all() and cyan[5:9, 15].all()
    assert cyan.sum() == 2 * 6 + 2 * 4 - 4


def test_video_evaluation_reports_micro_macro_and_labelled_normalisation():
    labels = np.array([0, 0, 1, 1, 0, 1, 1, 0], bool)
    task = _task("ucsd", "video", [["frame.png"] * 4] * 2, labels, clip_lengths=[4, 4])
    scores = np.array([0.1, 0.2, 0.9, 0.8, 5.0, 6.0, 7.0, 5.5])
    maps = [np.full((2, 2), s, np.float32) for s in scores]
    prediction = Prediction(maps, scores, [m > 1 for m in maps], [np.zeros((0, 5))] * 8, 1.0)
    result, _ = evaluate(task, prediction, [None] * 8)
    assert result["frame_auc_macro"] == pytest.approx(1.0)  # each clip ranks its anomalies first
    assert result["frame_auc_micro"] == pytest.approx(12 / 16)  # clip b's normals outrank clip a's anomalies: 4 of 16 pairs lost
    assert result["frame_auc_micro_clip_normalised"] == pytest.approx(1.0)
    assert "pixel_auroc" not in result  # no masks: no pixel metrics


def test_ucsd_pixel_metrics_only_over_clips_with_masks(tmp_path):
    synthetic.write_ucsd_like(tmp_path, name="UCSDped1", n_train_clips=1, n_test_clips=3, frames=12, size=(48, 64))
    task = ucsd_task(tmp_path / "UCSDped1")
    masks = task.masks([(48, 64)] * len(task.frames))
    covered = [mask is not None for mask in masks]
    assert 0 < sum(covered) < len(covered) and "pixel metrics are over those clips only" in task.notes[0]
    maps = [np.zeros((48, 64), np.float32) if m is None else m.astype(np.float32) for m in masks]
    scores = np.array([m.max() for m in maps])
    prediction = Prediction(maps, scores, maps, [np.zeros((0, 5))] * len(maps), 0.5)
    result, _ = evaluate(task, prediction, masks)
    assert result["pixel_auroc"] == 1.0 and result["pro_auc"] == 1.0
    assert result["pixel_evaluation"].startswith(f"{sum(covered)} of {len(covered)} test frames")


def test_bench_runs_dfr_and_its_feature_heads_on_the_same_task(tmp_path):
    models = bench_models(["pca-residual", "memory-bank"], None)
    synthetic.write_mvtec_like(tmp_path / "data", categories=("brick",), n_train=6, n_test=4, size=48, seed=0)
    results = run_suite(mvtec_tasks(tmp_path / "data"), models, tmp_path / "out")
    assert [r["model"] for r in results] == ["pca-residual", "memory-bank"]
    for result in results:
        assert 0.5 < result["metrics"]["pixel_auroc"] <= 1.0 and result["scoring"]["image_score"] == "top_mean"


def test_mvtec_style_true_boxes_are_the_mask_components_and_get_box_metrics():
    masks = [np.zeros((20, 30), bool), np.zeros((20, 30), bool)]
    masks[1][2:5, 3:7] = True
    masks[1][10:12, 20:29] = True
    task = _task("mvtec", "image", ["a.png", "b.png"], [False, True])
    assert [boxes.tolist() for boxes in task.true_boxes(masks)] == [[], [[3, 2, 7, 5], [20, 10, 29, 12]]]
    maps = [m.astype(np.float32) for m in masks]
    found = [np.zeros((0, 5)), np.array([[3, 2, 7, 5, 1.0], [0, 15, 4, 19, 0.5]])]  # one hit, one false alarm
    result, _ = evaluate(task, Prediction(maps, np.array([0.0, 1.0]), [m > 0.5 for m in maps], found, 0.5), masks)
    assert (result["box_recall"], result["box_precision"], result["box_recall_iou30"]) == (0.5, 0.5, 0.5)
    assert result["box_count_error"] == 0.0 and result["box_ap50"] == pytest.approx(51 / 101)


def test_bench_refuses_models_that_do_not_apply_to_the_dataset(tmp_path, capsys):
    from dfr.cli import main

    synthetic.write_pool_like(tmp_path / "pool", n_images=4, seed=0)
    for models, message in [("cae", "models ['cae'] do not apply to pool data; models that do: "),
                            ("dfr,stae", "models ['stae'] do not apply to pool data"),
                            ("nope", "unknown or unavailable model 'nope'"), (",", "--models names no model")]:
        assert main(["bench", "--dataset", "pool", "--root", str(tmp_path / "pool"), "--models", models,
                     "--out", str(tmp_path / "out")]) == 2
        error = capsys.readouterr().err
        assert message in error and ("poolae" in error or "unknown" in error or "no model" in error)
    assert not (tmp_path / "out").exists()


def test_evaluate_reports_a_saved_model_as_bench_does(tmp_path, capsys):
    from dfr import metrics
    from dfr.cli import main

    synthetic.write_mvtec_like(tmp_path / "data", categories=("brick",), n_train=6, n_test=4, size=48, seed=0)
    task = mvtec_tasks(tmp_path / "data")[0]
    model = DFR(weights=None, image_size=32, layers=("relu1_2", "relu2_2", "relu3_4"), epochs=2)
    model.fit(task.training_data()).save(tmp_path / "brick.dfr")
    for image in task.training_data():  # evaluate reads no training image: unreadable ones do not matter
        image.write_bytes(b"not an image")
    out = tmp_path / "eval"
    command = ["evaluate", str(tmp_path / "brick.dfr"), "--dataset", "mvtec", "--root", str(tmp_path / "data"),
               "--out", str(out)]
    assert main(command) == 0
    assert "| DFR (brick.dfr) |" in capsys.readouterr().out
    run = json.loads((out / "results.json").read_text())["runs"][0]
    prediction = model.predict(task.frames)
    masks = task.masks([m.shape for m in prediction.anomaly_maps])
    assert run["model"] == "brick.dfr" and run["fit_seconds"] is None and run["threshold"] == model.threshold_
    assert run["metrics"]["pixel_auroc"] == pytest.approx(metrics.pixel_auroc(prediction.anomaly_maps, masks))
    assert run["metrics"]["pro_auc"] == pytest.approx(metrics.pro_auc(prediction.anomaly_maps, masks))
    assert run["metrics"]["image_auroc"] == pytest.approx(
        metrics.image_auroc(None, task.image_labels, scores=prediction.scores))
    assert len(list((out / "runs" / "mvtec" / "brick" / "brick.dfr" / "predictions" / "masks").iterdir())) == 4
    assert "| saved |" in (out / "results.md").read_text()

    assert main(command) == 2
    assert "eval: folder is not empty" in capsys.readouterr().err
    (out / "mine.txt").write_text("kept until the new report is in place")
    assert main([*command, "--overwrite"]) == 0 and not (out / "mine.txt").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["brick.dfr", "data", "eval"]

    pytest.importorskip("onnxruntime")
    model.export_onnx(tmp_path / "brick.onnx")
    assert main(["evaluate", str(tmp_path / "brick.onnx"), *command[2:-1], str(tmp_path / "onnx-eval")]) == 0
    exported = json.loads((tmp_path / "onnx-eval" / "results.json").read_text())["runs"][0]
    for name in ("pixel_auroc", "pro_auc", "image_auroc"):
        assert exported["metrics"][name] == pytest.approx(run["metrics"][name], abs=1e-4)


def test_evaluate_refuses_a_video_model_on_images(tmp_path, capsys):
    from baselines import STAE
    from dfr.cli import main

    synthetic.write_mvtec_like(tmp_path / "data", categories=("brick",), n_train=4, n_test=2, size=48, seed=0)
    rng = np.random.default_rng(0)
    clips = [rng.random((12, 24, 24), np.float32) for _ in range(2)]
    STAE("cpu", image_size=83, channels=(4, 4, 4), window=4, epochs=1, device="cpu").fit(clips).save(tmp_path / "v.dfr")
    assert main(["evaluate", str(tmp_path / "v.dfr"), "--dataset", "mvtec", "--root", str(tmp_path / "data"),
                 "--out", str(tmp_path / "eval")]) == 2
    assert "STAE is a video model (clips); mvtec task brick has images" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists() and not list(tmp_path.glob(".eval*"))
