"""CPU cost of the raw-pixel baselines' small settings on demo-sized data.

Writes the demo's synthetic data to a temporary folder (UCSD-like: 4 training and 4 test
clips of 40 frames, 120x160; pool-like: 16 images of 180x320, or with ``--pool-train`` and
``--pool-size`` the pool use case's size), fits every baseline with
``preset="cpu"`` on it and prints, per model: fit wall time, prediction time per frame or
image and the share of it spent on masks and boxes (``predict`` against ``anomaly_map``),
parameter count, last training loss, and one detection metric (frame ROC-AUC,
micro, for the video models on the test clips; pixel ROC-AUC for the CAE on the test frames
and for the pool AE inside the pool on the swimmer boxes, with its box F1 and AP50 at IoU
0.5). The pool AE gets the pool case's scoring (``dfr.evaluation.tasks.POOL_SCORING``);
``--pool-epochs`` replaces its preset's training length, e.g. to compare with the 60 epochs
of the previous cpu preset.

    python benchmarks/perf_baselines.py
    python benchmarks/perf_baselines.py --models stae convlstm --threads 2
    python benchmarks/perf_baselines.py --models poolae --pool-train 60 --pool-size 360x640
    python benchmarks/perf_baselines.py --models poolae --pool-train 60 --pool-size 360x640 --pool-epochs 60

Timings depend on the machine and on what else runs on it; ``--threads`` sets torch's
thread count (default: torch's own choice).
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from dfr import metrics
from dfr.data.readers import boxes_to_mask
from dfr.data.synthetic import write_pool_like, write_ucsd_like
from dfr.evaluation.tasks import POOL_SCORING

MODELS = ("cae", "stae", "convlstm", "poolae")


def _ucsd(root: str) -> dict[str, Any]:
    data = write_ucsd_like(root, seed=0, overwrite=True)
    return {"train": data.train, "test": data.test, "labels": data.frame_labels, "masks": data.masks}


def _pick(items: list, indices: list[int]) -> list:
    return [items[i] for i in indices]


def _pool(root: str, train: int | None = None, size: tuple[int, int] = (180, 320)) -> dict[str, Any]:
    """The demo's pool images, or ``train`` swimmer-free training images and 2/3 as many with swimmers."""
    extra = {} if train is None else {"n_images": round(train * 5 / 3), "empty_fraction": 0.6}
    data = write_pool_like(root, seed=0, overwrite=True, size=size, **extra)
    free = [i for i, boxes in enumerate(data.boxes) if len(boxes) == 0]
    busy = [i for i, boxes in enumerate(data.boxes) if len(boxes)]
    return {
        "train": _pick(data.images, free), "train_regions": _pick(data.region_masks, free),
        "test": _pick(data.images, busy), "test_regions": _pick(data.region_masks, busy),
        "truth": [boxes_to_mask(data.boxes[i], data.images[i].shape[:2]) for i in busy],
        "boxes": _pick(data.boxes, busy),
    }


def run(name: str, ucsd: dict[str, Any], pool: dict[str, Any], pool_epochs: int | None = None) -> dict[str, Any]:
    """Fit and predict one model; returns its timings and metric."""
    import baselines

    if name == "poolae":
        model = baselines.PoolAE("cpu", epochs=pool_epochs, scoring=POOL_SCORING, device="cpu")
        fit_args, data, extra = (pool["train"],), pool["test"], {"region_masks": pool["test_regions"]}
        fit_kwargs = {"region_masks": pool["train_regions"]}
    elif name == "cae":
        model = baselines.CAE("cpu", device="cpu")
        fit_args, fit_kwargs, extra = ([f for clip in ucsd["train"] for f in clip],), {}, {}
        data = [f for clip in ucsd["test"] for f in clip]
    else:
        model = (baselines.STAE if name == "stae" else baselines.ConvLSTMAE)("cpu", device="cpu")
        fit_args, fit_kwargs, data, extra = (ucsd["train"],), {}, ucsd["test"], {}
    started = time.perf_counter()
    model.fit(*fit_args, **fit_kwargs)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    prediction = model.predict(data, **extra)
    predict_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.anomaly_map(data, **extra)
    map_seconds = time.perf_counter() - started
    if name == "poolae":
        inside = np.stack(pool["test_regions"])
        truth, maps = np.stack(pool["truth"])[inside], np.asarray(prediction.anomaly_maps)[inside]
        boxes = metrics.detection_metrics(prediction.boxes, pool["boxes"])
        metric = ("pixel ROC-AUC in pool", roc_auc_score(truth, maps),
                  f", box F1 {boxes['f1']:.3f}, AP50 {boxes['ap50']:.3f} ({len(model.training_loss_)} epochs)")
    elif name == "cae":
        metric = ("pixel ROC-AUC", metrics.pixel_auroc(prediction.anomaly_maps, np.concatenate(ucsd["masks"])))
    else:
        per_clip = np.split(prediction.scores, np.cumsum([len(c) for c in ucsd["test"]])[:-1])
        metric = ("frame ROC-AUC", metrics.frame_auc(per_clip, ucsd["labels"]))
    return {
        "model": name, "fit_s": fit_seconds, "predict_ms_per_item": 1000 * predict_seconds / len(prediction),
        "box_share": max(0.0, 1 - map_seconds / predict_seconds),
        "parameters": sum(p.numel() for p in model.network_.parameters()),
        "final_loss": model.training_loss_[-1], "metric": metric,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--pool-train", type=int, help="pool: this many training images (default: the demo's)")
    parser.add_argument("--pool-size", default="180x320", help="pool: image height x width (default 180x320)")
    parser.add_argument("--pool-epochs", type=int, help="pool AE: training epochs (default: its cpu preset's)")
    args = parser.parse_args(argv)
    height, width = (int(side) for side in args.pool_size.split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        ucsd, pool = _ucsd(f"{root}/ucsd"), _pool(f"{root}/pool", args.pool_train, (height, width))
        print(f"pool: {len(pool['train'])} training and {len(pool['test'])} test images of {height}x{width}")
        print(f"torch threads: {torch.get_num_threads()}")
        print(f"{'model':10s} {'fit s':>7s} {'predict ms/item':>16s} {'boxes':>6s} {'parameters':>11s} {'last loss':>10s}  metric")
        for name in args.models:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = run(name, ucsd, pool, args.pool_epochs)
            label, value, *more = result["metric"]
            print(f"{name:10s} {result['fit_s']:7.1f} {result['predict_ms_per_item']:16.1f} {result['box_share']:6.1%} "
                  f"{result['parameters']:11d} "
                  f"{result['final_loss']:10.2e}  {label} {value:.3f}{''.join(more)}")


if __name__ == "__main__":
    main()
