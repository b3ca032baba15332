"""The benchmark runner: fit each model on each task, predict, evaluate, keep everything.

Each (task, model) run writes ``runs/<dataset>/<task>/<model>/`` under the output folder:
``result.json`` (metrics, timings, configuration, training loss), ``curves.npz`` (ROC/PRO
curves and per-frame scores for the plots) and ``predictions/`` (maps, masks, overlays,
boxes, scores, ``example.png``; for video an MP4 overlay per test clip). ``result.json`` is
written last and atomically, so an interrupted suite resumes where it stopped: finished runs
are read back, not redone, and the folder of a run that stopped half-way is removed.

The test items are read, predicted and written one at a time (:func:`predict_to_folder`);
their maps and masks wait in files read back memory-mapped while the metrics need them, and
the ground-truth masks are read at the size of each prediction.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sklearn.metrics import roc_curve
from tqdm.auto import tqdm

from dfr import distributed, metrics
from dfr.api.prediction import ItemPrediction, Prediction
from dfr.data.io import read_image
from dfr.evaluation.models import BenchModel
from dfr.evaluation.tasks import Task
from dfr.outputs.files import atomic_path, unique_stems
from dfr.outputs.pictures import colourise, overlay, write_clip_video
from dfr.outputs.writer import PredictionWriter


def run_suite(tasks: list[Task], models: list[BenchModel], out: Path, *, seed: int = 0) -> list[dict[str, Any]]:
    """Run every applicable model on every task; return one result dict per run."""
    results = []
    runs = [(task, model) for task in tasks for model in models if task.dataset in model.datasets]
    for task, model in tqdm(runs, desc="benchmark", unit="run", disable=None):
        folder = out / "runs" / task.dataset / task.name / model.name
        done = folder / "result.json"
        if distributed.broadcast(done.is_file()):
            results.append(json.loads(done.read_text()))
            continue
        try:
            results.append(run_one(task, model, folder, seed))
        except BaseException:  # an error or interruption leaves no half-written run: --resume redoes it
            if distributed.is_main():
                shutil.rmtree(folder, ignore_errors=True)
            raise
    return results


def run_one(task: Task, bench: BenchModel, folder: Path, seed: int) -> dict[str, Any]:
    """Fit, predict, evaluate and save one model on one task.

    Under torch.distributed every process takes part in the fit; rank 0 alone predicts,
    evaluates and writes, and every process returns its result."""
    folder.mkdir(parents=True, exist_ok=True)
    model = bench.build(task.scoring, seed)
    train = task.training_data()
    if task.kind == "video" and model.input_kind != "clips":  # an image model learns from every frame
        train = [frame for clip in train for frame in clip]
    fit_extra = {"region_masks": task.train_regions} if model.takes_region_masks and task.train_regions else {}
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*random weights")
        model.fit(train, **fit_extra)
    fit_seconds = time.perf_counter() - started
    result, error = None, None
    if distributed.is_main():
        try:
            with distributed.local():
                result = evaluate_and_save(task, model, bench.name, bench.label, folder, fit_seconds)
        except Exception as caught:  # every rank stops with it
            error = caught
    distributed.check_all(error)
    return distributed.broadcast(result)


def evaluate_and_save(task: Task, model: Any, name: str, label: str, folder: Path, fit_seconds: float | None = None
                      ) -> dict[str, Any]:
    """Predict the task's test items with the fitted ``model``, evaluate, and write
    ``result.json``, ``curves.npz`` and ``predictions/`` into ``folder`` (``dfr bench`` after
    each fit; ``dfr evaluate`` for a saved model, whose ``fit_seconds`` is unknown)."""
    if model.input_kind == "clips" and task.kind != "video":
        raise ValueError(f"{type(model).__name__} is a video model (clips); {task.dataset} task {task.name} has images")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dfr-bench-maps.") as scratch:
        started = time.perf_counter()
        prediction = predict_to_folder(task, model, Path(scratch), folder / "predictions")
        predict_seconds = time.perf_counter() - started
        masks = task.masks([anomaly_map.shape for anomaly_map in prediction.anomaly_maps])
        evaluation, curves = evaluate(task, prediction, masks)
        write_example(task, prediction, masks, model.heatmap_range, folder / "predictions" / "example.png")
        del prediction  # release the memory-mapped files before they are removed
    np.savez_compressed(folder / "curves.npz", **curves)
    result = {
        "dataset": task.dataset, "task": task.name, "model": name, "label": label,
        "metrics": evaluation, "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
        "test_items": len(task.frames), "threshold": float(model.threshold_), "score_stats": model.score_stats_,
        "config": {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                   for k, v in model.get_params().items() if k != "scoring"},
        "scoring": model.scoring.to_dict(),
        "training_loss": [float(v) for v in getattr(model, "training_loss_", [])],
        "notes": task.notes,
        "world_size": model.world_size_,
    }
    with atomic_path(folder / "result.json") as temporary:
        temporary.write_text(json.dumps(result, indent=1, default=float))
    return result


def predict_to_folder(task: Task, model: Any, scratch: Path, out: Path) -> Prediction:
    """Predict the task's test items one at a time (``predict_iter``) and write each result's
    files into ``out`` (:class:`~dfr.outputs.writer.PredictionWriter`; for video also one MP4
    per test clip). Returns the whole prediction, its maps and masks memory-mapped from files in
    ``scratch``."""
    test = task.test if model.input_kind == "clips" else task.frames
    extra = {"region_masks": task.test_regions} if model.takes_region_masks and task.test_regions else {}
    names = unique_stems(task.item_names)
    shapes, scores, boxes = [], [], []
    clip: list[ItemPrediction] = []
    clip_ends = np.cumsum(task.clip_lengths).tolist()
    clip_names = unique_stems(task.test_names)
    with open(scratch / "maps.bin", "wb") as maps, open(scratch / "masks.bin", "wb") as masks, \
            PredictionWriter(out, model.heatmap_range, overwrite=True) as writer:
        for index, item in enumerate(model.predict_iter(test, **extra)):
            if index >= len(names):
                raise ValueError(f"the model gave more outputs than the {len(names)} test items")
            maps.write(np.ascontiguousarray(item.anomaly_map, np.float32).tobytes())
            masks.write(np.ascontiguousarray(item.mask, np.bool_).tobytes())
            shapes.append(item.anomaly_map.shape)
            scores.append(item.score)
            boxes.append(item.boxes)
            writer.add(item, names[index])
            if task.kind == "video":
                clip.append(item)
                if index + 1 in clip_ends:
                    write_clip_video(writer.staging / "videos" / f"{clip_names[clip_ends.index(index + 1)]}.mp4",
                                     [c.image for c in clip], [c.anomaly_map for c in clip],
                                     np.array([c.score for c in clip]), model.threshold_, model.heatmap_range)
                    clip = []
    if len(shapes) != len(names):
        raise ValueError(f"the model gave {len(shapes)} outputs for {len(names)} test items")
    sizes = [height * width for height, width in shapes]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    all_maps = np.memmap(scratch / "maps.bin", dtype=np.float32, mode="r")
    all_masks = np.memmap(scratch / "masks.bin", dtype=np.bool_, mode="r")
    return Prediction(anomaly_maps=[all_maps[s:s + n].reshape(shape) for s, n, shape in zip(starts, sizes, shapes)],
                      scores=np.array(scores),
                      masks=[all_masks[s:s + n].reshape(shape) for s, n, shape in zip(starts, sizes, shapes)],
                      boxes=boxes, threshold=model.threshold_)


def evaluate(task: Task, prediction: Prediction, masks: list[np.ndarray | None]
             ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics of one prediction against the task's ground truth ``masks`` (:meth:`Task.masks`),
    and curves for the plots."""
    maps = list(prediction.anomaly_maps)
    scores = np.asarray(prediction.scores, dtype=np.float64)
    covered = [i for i, mask in enumerate(masks) if mask is not None]
    out: dict[str, Any] = {}
    curves: dict[str, np.ndarray] = {"scores": scores, "labels": task.image_labels}
    if covered and any(masks[i].any() for i in covered):
        covered_maps, covered_masks = [maps[i] for i in covered], [masks[i] for i in covered]
        out["pixel_auroc"] = metrics.pixel_auroc(covered_maps, covered_masks)
        out["pro_auc"] = metrics.pro_auc(covered_maps, covered_masks)
        fpr, pro, _ = metrics.pro_curve(covered_maps, covered_masks)
        keep = np.unique(np.linspace(0, len(fpr) - 1, 2000).astype(int))
        curves["pro_fpr"], curves["pro"] = fpr[keep], pro[keep]
        out["pixel_evaluation"] = (f"{len(covered)} of {len(maps)} test {'frames' if task.kind == 'video' else 'images'} "
                                   f"with masks, at mask resolution {covered_masks[0].shape[1]}x{covered_masks[0].shape[0]}")
    if task.kind == "video":
        per_clip = np.split(scores, np.cumsum(task.clip_lengths)[:-1])
        labels = np.split(task.image_labels, np.cumsum(task.clip_lengths)[:-1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for mode in ("micro", "macro"):
                for normalise in (False, True):
                    video = metrics.evaluate_video(per_clip, labels, mode=mode, normalise=normalise)
                    key = f"{mode}{'_clip_normalised' if normalise else ''}"
                    out[f"frame_auc_{key}"], out[f"eer_{key}"] = video["frame_auc"], video["eer"]
        curves["clip_lengths"] = np.asarray(task.clip_lengths)
    elif len(set(task.image_labels.tolist())) == 2:
        out["image_auroc"] = metrics.image_auroc(None, task.image_labels, scores=scores)
    if len(set(task.image_labels.tolist())) == 2:
        curves["roc_fpr"], curves["roc_tpr"], _ = roc_curve(task.image_labels, scores)
    true_boxes = task.true_boxes(masks)
    if true_boxes is not None:
        boxes = metrics.detection_metrics(prediction.boxes, true_boxes)
        out.update({f"box_{k}": v for k, v in boxes.items()})
    return out, curves


def write_example(task: Task, prediction: Prediction, masks: list[np.ndarray | None],
                  heatmap_range: tuple[float, float], path: Path) -> None:
    """Overlay of the test item with the largest true anomaly: predicted boxes green, true boxes cyan."""
    areas = [0 if mask is None else int(mask.sum()) for mask in masks]
    index = int(np.argmax(areas)) if max(areas) > 0 else int(np.argmax(task.image_labels))
    true_boxes = (task.true_boxes(masks) or [np.zeros((0, 4))] * len(masks))[index]
    heatmap = colourise(prediction.anomaly_maps[index], *heatmap_range)
    picture = overlay(read_image(task.frames[index]), heatmap, prediction.boxes[index], true_boxes)
    if not cv2.imwrite(str(path), picture):
        raise OSError(f"{path}: could not write the example overlay")
