"""Large images and small objects: the feature models resized whole to their network input
("squashed", ``tile_size=None``) beside the same models in tiles (``tile_size="auto"``), in one run
on the same generated data.

Three parts (``--parts``, default all):

- ``textures``: high-resolution, non-square texture images (640 x 1024; weave, wood, leather)
  with one small defect each (0.02-0.2 % of the image), MVTec layout
  (:func:`dfr.data.synthetic.write_large_textures`). Image AUROC, pixel AUROC, PRO-AUC.
- ``pool``: swimming-pool footage from several simulated cameras
  (:func:`dfr.data.synthetic.write_pool_cameras`) at 640 x 360 and 1600 x 900: training on the
  frames of four cameras, testing on two cameras that training never saw; and the fixed-camera
  pool of ``dfr bench`` (320 x 180) beside them. Box precision, recall and F1 at IoU 0.5.
- ``moderate`` (not run by default): the same textures at 320 x 512, twice the network input,
  resized whole or in tiles: what the ``tile_size="auto"`` rule rests on.
- ``speed``: predict throughput in megapixels per second of DFR on 256 x 256 images (one network
  input each) and on 900 x 1600 images in tiles, and the peak RSS of predicting one 2000 x 8000
  image, each in a process of its own.

Every model is EfficientNet-Lite0 with its offline ImageNet weights at a 256 x 256 network input,
DFR's cpu preset, and the pool autoencoder (native resolution) as the raw-pixel peer. Data come
from the seeds of ``--split`` (``benchmarks/write_data.py``: choose on ``validation``, report
``test``)::

    python benchmarks/large_images.py --split test --out bench/large
    python benchmarks/large_images.py --split validation --parts textures --out bench/large-val

Runs already in ``--out`` are read back instead of redone (delete a run folder to redo it).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from benchmarks.tune_boxes import sweep
from dfr.api.registry import create_model
from dfr.data import synthetic
from dfr.data.io import read_image
from dfr.evaluation.models import EFFNET_SIZE, BenchModel
from dfr.evaluation.report import machine_description
from dfr.evaluation.suite import run_suite
from dfr.evaluation.tasks import POOL_SCORING, Task, mvtec_tasks, pool_task
from dfr.models.backbones.timm_backbone import OFFLINE_BACKBONE
from dfr.outputs.files import unique_stems
from dfr.scoring import ScoringSettings

SPLIT_SEEDS = {"validation": 1000, "test": 2000}
TEXTURES = ("weave", "wood", "leather")
#: Multi-camera pool: the cameras differ, so maps are not divided by a per-position normal level;
#: no opening and a smaller least box (swimmers are 20-60 px at 1600 x 900, 8-24 px at 640 x 360),
#: the best mean box F1 of the sweep on the validation split (:func:`tune_boxes`).
CAMERA_SCORING = {**POOL_SCORING, "normalise_positions": False, "opening": 0.0, "min_box_area": 0.00005}
POOL_SIZES = {"640x360": (360, 640), "1600x900": (900, 1600)}


def feature_model(name: str, label: str, tile_size: Any, datasets: tuple[str, ...], **extra: Any) -> BenchModel:
    """A bench model on EfficientNet-Lite0 (ImageNet, offline) with the given tiling."""
    params = {"backbone": OFFLINE_BACKBONE, "weights": "imagenet", "image_size": EFFNET_SIZE, "tile_size": tile_size,
              **extra}
    base = name.split(" ")[0]
    if base == "dfr":
        params["preset"] = "cpu"
    return BenchModel(name.replace(" ", "-"), label, datasets,
                      lambda scoring, seed: create_model(base, **params, scoring=scoring, seed=seed))


def pool_autoencoder() -> BenchModel:
    return BenchModel("poolae", "PoolAE (raw pixels, native resolution)", ("pool",),
                      lambda scoring, seed: create_model("poolae", preset="cpu", scoring=scoring, seed=seed))


def texture_part(out: Path, split: str) -> list[dict[str, Any]]:
    root = out / "data" / "textures"
    if not root.is_dir():
        synthetic.write_large_textures(root, TEXTURES, n_train=20, n_test=24, size=(640, 1024), seed=SPLIT_SEEDS[split])
    models = [feature_model("dfr squashed", "DFR, squashed to 256²", None, ("mvtec",)),
              feature_model("dfr tiled", "DFR, tiles of 256² (auto)", "auto", ("mvtec",)),
              feature_model("dfr tiled-128", "DFR, tiles of 128² enlarged to 256²", 128, ("mvtec",))]
    return run_suite(mvtec_tasks(root), models, out / "textures")


def moderate_part(out: Path, split: str) -> list[dict[str, Any]]:
    """What ``AUTO_SCALE`` rests on: textures at 320 x 512, twice the network input in width
    (defects of the same pixel sizes as at 640 x 1024), resized whole or in tiles of 256²."""
    root = out / "data" / "textures-320x512"
    if not root.is_dir():
        synthetic.write_large_textures(root, TEXTURES, n_train=20, n_test=24, size=(320, 512), seed=SPLIT_SEEDS[split],
                                       defect_area=(0.0008, 0.008))
    models = [feature_model("dfr squashed", "DFR, squashed to 256²", None, ("mvtec",)),
              feature_model("dfr tiled", "DFR, tiles of 256²", 256, ("mvtec",))]
    return run_suite(mvtec_tasks(root), models, out / "textures-320x512")


#: Box settings swept on the validation split's maps (:func:`tune_boxes`): small objects, no opening.
BOX_GRID = {"seed_ratio": (1.5, 2.5), "opening": (0.0,), "closing": (0.0, 0.01, 0.02, 0.04), "peak_fraction": (0.0, 0.3),
            "min_box_area": (0.00005, 0.0002), "merge_gap": (None, 0.01, 0.03)}


def tune_boxes(task: Task, results: list[dict[str, Any]], folder: Path) -> None:
    """Print the box settings of ``BOX_GRID`` that are best on average over the models of
    ``results``, swept on their saved test maps: for the validation split only."""
    regions = [read_image(path)[:, :, 0] > 0 for path in task.test_regions] if task.test_regions else None
    table: dict[tuple, list[float]] = {}
    for result in results:
        maps_folder = folder / "runs" / task.dataset / task.name / result["model"] / "predictions" / "maps"
        maps = [np.load(maps_folder / f"{name}.npy") for name in unique_stems(task.item_names)]
        model = SimpleNamespace(scoring=ScoringSettings.coerce(result["scoring"]), threshold_=result["threshold"],
                                score_stats_=result["score_stats"])
        for settings, figures in sweep(task, maps, regions, model, BOX_GRID):
            table.setdefault(tuple(settings.items()), []).append(figures["f1"])
    ranked = sorted(table.items(), key=lambda item: -np.mean(item[1]))
    print(f"{task.name}: box settings by mean box F1 over {len(results)} models (validation):")
    for settings, values in ranked[:5]:
        print(f"  {dict(settings)}: mean {np.mean(values):.3f}, per model {', '.join(f'{v:.3f}' for v in values)}")


def pool_part(out: Path, split: str) -> list[dict[str, Any]]:
    seed = SPLIT_SEEDS[split]
    results = []
    for size_name, size in POOL_SIZES.items():
        root = out / "data" / f"pool-cameras-{size_name}"
        if not root.is_dir():
            synthetic.write_pool_cameras(root, cameras=6, test_cameras=2, images_per_camera=10, size=size, seed=seed)
        task = dataclasses.replace(pool_task(root, seed=seed), name=f"6 cameras, {size_name}", scoring=CAMERA_SCORING)
        models = [pool_autoencoder(), feature_model("dfr squashed", "DFR, squashed to 256²", None, ("pool",)),
                  feature_model("dfr tiled", "DFR, tiles of 256² (auto)", "auto", ("pool",))]
        if size_name == "640x360":
            models.append(feature_model("dfr rectangular", "DFR, rectangular 360x640 input", None, ("pool",),
                                        image_size=(360, 640)))
        runs = run_suite([task], models, out / "pool" / size_name)
        if split == "validation":
            tune_boxes(task, runs, out / "pool" / size_name)
        results += runs
    root = out / "data" / "pool-fixed-camera"
    if not root.is_dir():
        synthetic.write_pool_like(root, n_images=60, seed=seed, formats=("coco",))
    task = dataclasses.replace(pool_task(root, seed=seed), name="fixed camera, 320x180")
    models = [pool_autoencoder(), feature_model("dfr tiled", "DFR (auto: not tiled at this size)", "auto", ("pool",))]
    return results + run_suite([task], models, out / "pool" / "fixed")


SPEED_SCRIPT = """
import json, sys, time
import numpy as np
import dfr
from benchmarks.large_images import peak_rss_mb
model = dfr.load(sys.argv[1], device="cpu")
height, width, count = (int(value) for value in sys.argv[2:5])
rng = np.random.default_rng(0)
images = [rng.random((height, width, 3), dtype=np.float32) for _ in range(count)]
model.predict(images[:1])  # warm-up
started = time.perf_counter()
for image in images:
    model.predict(image[None])
seconds = time.perf_counter() - started
print(json.dumps({"size": f"{height}x{width}", "images": count, "seconds": seconds,
                  "megapixels_per_second": count * height * width / 1e6 / seconds,
                  "tiles_per_image": len(model.tiles(height, width) or [None]),
                  "peak_rss_mb": peak_rss_mb()}))
"""


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: VmHWM, which starts afresh at exec (ru_maxrss
    would carry over the peak of the parent that spawned it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def speed_part(out: Path) -> list[dict[str, Any]]:
    folder = out / "speed"
    folder.mkdir(parents=True, exist_ok=True)
    model_file = folder / "dfr-effnet.dfr"
    if not model_file.is_file():
        data = synthetic.defect_dataset("weave", n_train=20, n_test=1, size=256, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = create_model("dfr", preset="cpu", backbone=OFFLINE_BACKBONE, weights="imagenet",
                                 image_size=EFFNET_SIZE, tile_size="auto", device="cpu").fit(data.train)
        model.save(model_file)
    runs = []
    for height, width, count in ((256, 256, 32), (900, 1600, 4), (2000, 8000, 1)):
        done = subprocess.run([sys.executable, "-c", SPEED_SCRIPT, str(model_file), str(height), str(width), str(count)],
                              check=True, capture_output=True, text=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    (folder / "speed.json").write_text(json.dumps(runs, indent=1))
    return runs


def table(results: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    lines = ["| task | model | " + " | ".join(title for _, title in columns) + " | fit s | predict s |",
             "|---|---|" + "---|" * len(columns) + "---|---|"]
    for result in results:
        values = [result["metrics"].get(key) for key, _ in columns]
        shown = [f"{value:.3f}" if isinstance(value, float) else str(value) for value in values]
        lines.append(f"| {result['task']} | {result['label']} | " + " | ".join(shown)
                     + f" | {result['fit_seconds']:.0f} | {result['predict_seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="test")
    parser.add_argument("--parts", default="textures,pool,speed",
                        help="comma-separated: textures, moderate, pool, speed (default: all but moderate)")
    parser.add_argument("--out", type=Path, required=True, help="folder for data, runs and tables (reused)")
    args = parser.parse_args()
    parts = args.parts.split(",")
    started = time.perf_counter()
    print(f"# Large images, {args.split} split — {machine_description()}, {datetime.date.today()}\n")
    if "textures" in parts:
        print("## High-resolution textures (640x1024, defects of 0.02-0.2 % of the image)\n")
        print(table(texture_part(args.out, args.split),
                    [("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("pro_auc", "PRO-AUC")]) + "\n")
    if "moderate" in parts:
        print("## Textures at 320x512 (2x the network input): resized whole or in tiles\n")
        print(table(moderate_part(args.out, args.split),
                    [("image_auroc", "image AUROC"), ("pixel_auroc", "pixel AUROC"), ("pro_auc", "PRO-AUC")]) + "\n")
    if "pool" in parts:
        print("## Pool: 6 cameras (test: 2 unseen), and the fixed camera\n")
        print(table(pool_part(args.out, args.split),
                    [("box_precision", "box precision"), ("box_recall", "box recall"), ("box_f1", "box F1"),
                     ("pixel_auroc", "pixel AUROC")]) + "\n")
    if "speed" in parts:
        print("## Predict throughput and memory (DFR, EfficientNet-Lite0, one process each)\n")
        print("| image | tiles per image | images | MP/s | peak RSS MB |\n|---|---|---|---|---|")
        for run in speed_part(args.out):
            print(f"| {run['size']} | {run['tiles_per_image']} | {run['images']} | {run['megapixels_per_second']:.3f} "
                  f"| {run['peak_rss_mb']:.0f} |")
        print()
    print(f"({time.perf_counter() - started:.0f} s; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
