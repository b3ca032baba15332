"""The benchmark runner: fit each model on each task, predict, evaluate, keep everything.

Each (task, model) run writes ``runs/<dataset>/<task>/<model>/`` under the output folder:
``result.json`` (metrics, timings, configuration, training loss), ``curves.npz`` (ROC/PRO
curves and per-frame scores for the plots) and ``predictions/`` (maps, masks, overlays,
boxes, scores; for video an MP4 overlay per test clip). ``result.json`` is written last and
atomically, so an interrupted suite resumes where it stopped: finished runs are read back,
not redone, and the folder of a run that stopped half-way is removed. The test items are
predicted one at a time and their maps and masks wait in memory-mapped files
(:func:`predict_to_files`) while the metrics read them.
"""
from __future__ import annotations

import json
import os
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

from benchmarks.models import ModelSpec
from benchmarks.tasks import Task
from dfr import distributed, metrics
from dfr.outputs import colourise, overlay, write_prediction
from dfr.prediction import Prediction


def run_suite(tasks: list[Task], specs: list[ModelSpec], out: Path, *, seed: int = 0) -> list[dict[str, Any]]:
    """Run every applicable model on every task; return one result dict per run."""
    results = []
    runs = [(task, spec) for task in tasks for spec in specs if task.dataset in spec.datasets]
    for task, spec in tqdm(runs, desc="benchmark", unit="run", disable=None):
        folder = out / "runs" / task.dataset / task.name / spec.name
        done = folder / "result.json"
        if distributed.broadcast(done.is_file()):
            results.append(json.loads(done.read_text()))
            continue
        try:
            results.append(run_one(task, spec, folder, seed))
        except BaseException:  # an error or interruption leaves no half-written run: --resume redoes it
            if distributed.is_main():
                shutil.rmtree(folder, ignore_errors=True)
            raise
    return results


def run_one(task: Task, spec: ModelSpec, folder: Path, seed: int) -> dict[str, Any]:
    """Fit, predict, evaluate and save one model on one task.

    Under torch.distributed every process takes part in the fit; rank 0 alone predicts,
    evaluates and writes, and every process returns its result."""
    folder.mkdir(parents=True, exist_ok=True)
    model = spec.build(task, seed)
    train = task.train if spec.takes_clips or task.kind == "image" else [f for clip in task.train for f in clip]
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
                result = evaluate_and_save(task, model, spec.name, spec.label, folder, fit_seconds)
        except Exception as caught:  # every rank stops with it
            error = caught
    distributed.check_all(error)
    return distributed.broadcast(result)


def evaluate_and_save(task: Task, model, name: str, label: str, folder: Path, fit_seconds: float | None = None
                      ) -> dict[str, Any]:
    """Predict the task's test items with the fitted ``model``, evaluate, and write
    ``result.json``, ``curves.npz`` and ``predictions/`` into ``folder`` (``dfr bench`` after
    each fit; ``dfr evaluate`` for a saved model, whose ``fit_seconds`` is unknown)."""
    if model.input_kind == "clips" and task.kind != "video":
        raise ValueError(f"{type(model).__name__} is a video model (clips); {task.dataset} task {task.name} has images")
    test = task.test if model.input_kind == "clips" else task.frames
    predict_extra = {"region_masks": task.test_regions} if model.takes_region_masks and task.test_regions else {}
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dfr-bench-maps.") as scratch:
        started = time.perf_counter()
        prediction = predict_to_files(model, test, predict_extra, [frame.shape[:2] for frame in task.frames],
                                      Path(scratch))
        predict_seconds = time.perf_counter() - started
        evaluation, curves = evaluate(task, prediction)
        save_predictions(task, prediction, model, folder / "predictions")
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
    _write_json(folder / "result.json", result)
    return result


def predict_to_files(model, test: Any, predict_extra: dict, shapes: list[tuple[int, int]], folder: Path) -> Prediction:
    """``model.predict(test)``, computed one item at a time (``predict_iter``) with the maps and
    masks written to memory-mapped files in ``folder`` (``maps.npy``, ``masks.npy``), so that
    the metrics that need every map read them from disk; ``shapes``: (H, W) of each output."""
    ends = np.cumsum([height * width for height, width in shapes])
    maps = np.lib.format.open_memmap(folder / "maps.npy", mode="w+", dtype=np.float32, shape=(int(ends[-1]),))
    masks = np.lib.format.open_memmap(folder / "masks.npy", mode="w+", dtype=np.bool_, shape=(int(ends[-1]),))
    scores, boxes = [], []
    for index, item in enumerate(model.predict_iter(test, **predict_extra)):
        if index >= len(shapes) or item.anomaly_map.shape != tuple(shapes[index]):
            raise ValueError(f"output {index} of shape {item.anomaly_map.shape} does not match the "
                             f"{len(shapes)} test items")
        maps[ends[index] - item.anomaly_map.size:ends[index]] = item.anomaly_map.ravel()
        masks[ends[index] - item.mask.size:ends[index]] = item.mask.ravel()
        scores.append(item.score)
        boxes.append(item.boxes)
    if len(scores) != len(shapes):
        raise ValueError(f"the model gave {len(scores)} outputs for {len(shapes)} test items")
    maps.flush()
    masks.flush()
    starts = np.concatenate([[0], ends[:-1]])
    views = [(maps[start:end].reshape(shape), masks[start:end].reshape(shape)) for start, end, shape in zip(starts, ends, shapes)]
    return Prediction(anomaly_maps=[m for m, _ in views], scores=np.array(scores), masks=[k for _, k in views],
                      boxes=boxes, threshold=model.threshold_)


def evaluate(task: Task, prediction: Prediction) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Metrics of one prediction against the task's ground truth, and curves for the plots."""
    maps = list(prediction.anomaly_maps)
    scores = np.asarray(prediction.scores, dtype=np.float64)
    covered = [i for i, mask in enumerate(task.masks) if mask is not None]
    out: dict[str, Any] = {}
    curves: dict[str, np.ndarray] = {"scores": scores, "labels": task.image_labels}
    if covered and any(task.masks[i].any() for i in covered):
        covered_maps, covered_masks = [maps[i] for i in covered], [task.masks[i] for i in covered]
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
    true_boxes = task.true_boxes()
    if true_boxes is not None:
        boxes = metrics.detection_metrics(prediction.boxes, true_boxes)
        out.update({f"box_{k}": v for k, v in boxes.items()})
    return out, curves


def save_predictions(task: Task, prediction: Prediction, model, folder: Path) -> None:
    """Maps, masks, overlays, boxes and scores; for video also one MP4 overlay per test clip."""
    frames = task.frames
    names = task.test_names if task.kind == "image" else [
        f"{clip}_{index:03d}" for clip, length in zip(task.test_names, task.clip_lengths) for index in range(length)
    ]
    clips = list(zip(task.test_names, task.clip_lengths)) if task.kind == "video" else None
    write_prediction(folder, prediction, frames, names, model.heatmap_range, clips=clips, overwrite=True)
    write_example(task, prediction, model, folder / "example.png")


def write_example(task: Task, prediction: Prediction, model, path: Path) -> None:
    """Overlay of the test item with the largest true anomaly: predicted boxes green, true boxes cyan."""
    areas = [0 if mask is None else int(mask.sum()) for mask in task.masks]
    index = int(np.argmax(areas)) if max(areas) > 0 else int(np.argmax(task.image_labels))
    true_boxes = (task.true_boxes() or [np.zeros((0, 4))] * len(task.frames))[index]
    heatmap = colourise(prediction.anomaly_maps[index], *model.heatmap_range)
    picture = overlay(task.frames[index], heatmap, prediction.boxes[index], true_boxes)
    if not cv2.imwrite(str(path), picture):
        raise OSError(f"{path}: could not write the example overlay")


def _write_json(path: Path, record: dict[str, Any]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        json.dump(record, stream, indent=1, default=float)
    os.replace(temporary, path)
