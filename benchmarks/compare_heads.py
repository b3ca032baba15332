"""DFR against its feature-space peers on the same backbone: one table per run.

Every head scores the same regional features of the same backbone and weights: DFR (cpu
preset, optionally the paper preset), the PCA residual and the patch memory bank. Data are
planted-defect crops of every texture in ``dfr.data.synthetic.defects`` (photos and procedural), defects
of five kinds. Two disjoint seeds give two splits: choose settings on ``--split validation``
and report ``--split test``, never the other way round.

For each texture and head the table prints image AUROC, pixel AUROC, PRO-AUC (FPR limit
0.3, at mask resolution), fit seconds, predict images/s and the peak RSS of the process that
ran it (each run in a fresh process). Maps are post-processed with the library's default
scoring settings unless ``--sigmas`` / ``--image-scores`` ask for a sweep, which is computed
from the same raw maps::

    python benchmarks/compare_heads.py --backbone effnet --split test
    python benchmarks/compare_heads.py --backbone vgg --image-size 128 --split test
    python benchmarks/compare_heads.py --split validation --sigmas 0 2 4 8 --image-scores max top_mean mean
    python benchmarks/compare_heads.py --split validation --heads dfr --dfr-settings '{"learning_rate": 1e-3}'
    python benchmarks/compare_heads.py --split validation --layers stage0,stage1,stage2,stage3,stage4
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import time
import warnings
from typing import Any

import numpy as np

from dfr import DFR, ScoringSettings, metrics, scoring
from dfr.data.synthetic.defects import TEXTURES, defect_dataset

BACKBONES = {"effnet": ("timm:tf_efficientnet_lite0", "imagenet"), "vgg": ("vgg19", None)}
HEADS = ("dfr", "dfr-paper", "pca-residual", "memory-bank")
SPLIT_SEEDS = {"validation": 1000, "test": 2000}
RAW = ScoringSettings(smoothing_sigma=0.0, image_score="max")


def build(head: str, args: argparse.Namespace):
    """An unfitted head on the chosen backbone, scoring its raw maps (no smoothing)."""
    import baselines

    backbone, weights = BACKBONES[args.backbone]
    common = {"backbone": backbone, "weights": weights, "layers": args.layers, "image_size": args.image_size,
              "scoring": RAW, "seed": args.seed}
    if head in ("dfr", "dfr-paper"):
        return DFR("cpu" if head == "dfr" else "paper", **common, **args.dfr_settings)
    if head == "pca-residual":
        return baselines.PCAResidual(**common, **args.pca_settings)
    return baselines.PatchMemoryBank(**common, **args.bank_settings)


def run_one(head: str, texture: str, index: int, args: argparse.Namespace) -> dict[str, Any]:
    """Fit and predict one head on one texture; metrics for every requested scoring setting."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = defect_dataset(texture, n_train=args.train, n_test=args.test, size=args.size,
                          seed=SPLIT_SEEDS[args.split] + index, disjoint=not args.overlapping_crops)
    model = build(head, args)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data.train)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    raw = list(model.anomaly_map(data.test))
    predict_rate = len(raw) / (time.perf_counter() - started)
    labels = np.array([mask.any() for mask in data.masks])
    rows = []
    for sigma in args.sigmas:
        maps = [scoring.smooth(m, sigma) for m in raw]
        pixel = {"pixel_auroc": metrics.pixel_auroc(maps, data.masks), "pro_auc": metrics.pro_auc(maps, data.masks)}
        for kind in args.image_scores:
            settings = ScoringSettings(smoothing_sigma=sigma, image_score=kind, top_fraction=args.top_fraction)
            scores = scoring.image_scores(maps, settings)
            rows.append({"sigma": sigma, "image_score": kind,
                         "image_auroc": metrics.image_auroc(None, labels, scores=scores), **pixel})
    return {"head": head, "texture": texture, "rows": rows, "fit_seconds": fit_seconds, "predict_rate": predict_rate,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _in_fresh_process(args_tuple) -> dict[str, Any]:
    return run_one(*args_tuple)


def main() -> None:
    defaults = ScoringSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=sorted(BACKBONES), default="effnet",
                        help="effnet: EfficientNet-Lite0 with its offline ImageNet weights; vgg: VGG19, seeded random weights")
    parser.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="validation",
                        help="validation: for choosing settings; test: for reporting (disjoint seeds)")
    parser.add_argument("--textures", nargs="+", choices=TEXTURES, default=list(TEXTURES))
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=["dfr", "pca-residual", "memory-bank"])
    parser.add_argument("--train", type=int, default=80, help="normal training images per texture (default 80)")
    parser.add_argument("--test", type=int, default=40, help="test images per texture, a quarter good (default 40)")
    parser.add_argument("--size", type=int, default=256, help="image side of the data (default 256)")
    parser.add_argument("--image-size", type=int, default=256, help="network input side (default 256)")
    parser.add_argument("--overlapping-crops", action="store_true",
                        help="cut training and test crops from the whole texture, not from disjoint halves")
    parser.add_argument("--layers", type=lambda value: value.split(","),
                        help="backbone layers for every head, comma-separated (default: the backbone's)")
    parser.add_argument("--seed", type=int, default=0, help="model seed (default 0)")
    parser.add_argument("--sigmas", nargs="+", type=float, default=[defaults.smoothing_sigma],
                        help=f"smoothing sigmas to evaluate, in pixels (default {defaults.smoothing_sigma})")
    parser.add_argument("--image-scores", nargs="+", choices=scoring.IMAGE_SCORES, default=[defaults.image_score])
    parser.add_argument("--top-fraction", type=float, default=defaults.top_fraction)
    for name in ("dfr", "pca", "bank"):
        parser.add_argument(f"--{name}-settings", type=json.loads, default={},
                            help=f"constructor arguments for the {name} head, as JSON")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    args = parser.parse_args()

    jobs = [(head, texture, TEXTURES.index(texture), args) for texture in args.textures for head in args.heads]
    results = []
    with multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1) as pool:
        for result in pool.imap(_in_fresh_process, jobs):
            best = result["rows"][0]
            print(f"{result['texture']:8} {result['head']:13} fitted in {result['fit_seconds']:.0f} s: "
                  f"PRO-AUC {best['pro_auc']:.3f}", flush=True)
            results.append(result)

    backbone, weights = BACKBONES[args.backbone]
    print(f"\n{backbone} ({weights or 'random weights'}), {args.split} split, {args.train} training and {args.test} "
          f"test images of {args.size}² per texture, network input {args.image_size}², "
          f"layers {','.join(args.layers) if args.layers else 'default'}, model seed {args.seed}")
    header = f"{'texture':8} {'head':13} {'sigma':>5} {'score':>8} {'image AUROC':>11} {'pixel AUROC':>11} " \
             f"{'PRO-AUC':>7} {'fit s':>6} {'pred img/s':>10} {'peak RSS GiB':>12}"
    print(header)
    for result in results:
        for row in result["rows"]:
            print(f"{result['texture']:8} {result['head']:13} {row['sigma']:5g} {row['image_score']:>8} "
                  f"{row['image_auroc']:11.3f} {row['pixel_auroc']:11.3f} {row['pro_auc']:7.3f} "
                  f"{result['fit_seconds']:6.0f} {result['predict_rate']:10.1f} {result['peak_rss_gib']:12.2f}")
    print(f"\nmean over {len(args.textures)} textures:")
    for head in args.heads:
        mine = [r for r in results if r["head"] == head]
        for position, row in enumerate(mine[0]["rows"]):
            values = {key: np.mean([r["rows"][position][key] for r in mine]) for key in ("image_auroc", "pixel_auroc", "pro_auc")}
            print(f"{head:13} sigma {row['sigma']:g} {row['image_score']:>8}: image AUROC {values['image_auroc']:.3f}, "
                  f"pixel AUROC {values['pixel_auroc']:.3f}, PRO-AUC {values['pro_auc']:.3f}, "
                  f"fit {np.mean([r['fit_seconds'] for r in mine]):.0f} s")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"settings": {k: v for k, v in vars(args).items()}, "results": results}, stream, indent=1)


if __name__ == "__main__":
    main()
