"""Choose the box settings of ``dfr.scoring`` on a validation split of generated data.

Writes generated pool images (swimmers; pool masks as regions of interest) and/or MVTec-style
textures (planted defects) with the validation seed, fits each model once as ``dfr bench``
builds it, keeps its smoothed test maps, and scores every combination of box settings on
them: box F1 and AP50 at IoU 0.5, and recall at IoU 0.3. Prints the best settings per model,
the figures at the model's own settings (as ``dfr bench`` builds it: on pool data the pool
case's scoring) and the settings that are best on average over the models; never run it on
the test split's seed (``benchmarks/write_data.py --split test``), which is for reporting
with ``dfr bench``.

    python benchmarks/tune_boxes.py --dataset pool --models poolae memory-bank-effnet
    python benchmarks/tune_boxes.py --dataset mvtec --models dfr-effnet
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.write_data import write_split
from dfr import metrics, scoring
from dfr.data.io import read_image
from dfr.evaluation.models import bench_model
from dfr.evaluation.tasks import Task

GRID = {
    "seed_ratio": (1.0, 1.5, 2.0, 2.5, 3.0),
    "opening": (0.0, 0.01, 0.02),
    "closing": (0.0, 0.01, 0.02, 0.04),
    "peak_fraction": (0.0, 0.3, 0.5),
    "min_box_area": (0.0002, 0.0005, 0.001),
    "merge_gap": (None, 0.0, 0.01, 0.03),
}


def fitted_maps(task: Task, name: str, seed: int = 0):
    """Fit ``name`` on ``task`` as ``dfr bench`` builds it; its smoothed test maps, regions and the seconds they took."""
    model = bench_model(name, None).build(task.scoring, seed)
    regions = {"region_masks": task.train_regions} if task.train_regions and model.takes_region_masks else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(task.training_data(), **regions)
    test_regions = [read_image(path)[:, :, 0] > 0 for path in task.test_regions] if regions else None
    started = time.perf_counter()
    maps = list(model.anomaly_map(task.test, **({"region_masks": test_regions} if regions else {})))
    seconds = time.perf_counter() - started
    return model, maps, test_regions, seconds


def sweep(task: Task, maps, regions, model, grid: dict[str, tuple] = GRID) -> list[tuple[dict, dict]]:
    """Box metrics of every setting in ``grid``, best box F1 first."""
    truth = task.true_boxes(task.masks([m.shape for m in maps]))
    rows = []
    for values in itertools.product(*grid.values()):
        settings = replace(model.scoring, **dict(zip(grid, values)))
        found = [scoring.detect(m, model.threshold_, settings, floor=model.score_stats_["pixel_median"],
                                region=None if regions is None else regions[i])[1] for i, m in enumerate(maps)]
        rows.append((dict(zip(grid, values)), metrics.detection_metrics(found, truth)))
    return sorted(rows, key=lambda row: -row[1]["f1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("pool", "mvtec"), default="pool")
    parser.add_argument("--models", nargs="+", default=["poolae", "memory-bank-effnet", "dfr-effnet"])
    parser.add_argument("--key", choices=("f1", "ap50", "recall_iou30"), default="f1",
                        help="metric that ranks the settings (default f1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        tasks = write_split(args.dataset, Path(root), "validation")
        table: dict[tuple, list[float]] = {}
        for name in args.models:
            for task in tasks:
                started = time.perf_counter()
                model, maps, regions, seconds = fitted_maps(task, name)
                detect_started = time.perf_counter()
                rows = sweep(task, maps, regions, model)
                per_setting = (time.perf_counter() - detect_started) / len(rows)
                rows.sort(key=lambda row: -row[1][args.key])
                best, figures = rows[0]
                own = {key: getattr(model.scoring, key) for key in GRID}
                at_own = next((f for s, f in rows if s == own), None)
                print(f"{name} on {task.name}: fitted and predicted in {time.perf_counter() - started:.0f} s; "
                      f"maps {1000 * seconds / len(maps):.1f} ms/image, boxes {1000 * per_setting / len(maps):.2f} ms/image")
                print(f"  best by {args.key}: {best} -> " + _figures(figures), flush=True)
                if at_own:
                    print(f"  at the model's own settings {own} -> " + _figures(at_own), flush=True)
                for settings, figures in rows:
                    table.setdefault(tuple(settings.items()), []).append(figures[args.key])
        ranked = sorted(table.items(), key=lambda item: -np.mean(item[1]))
        print(f"\nbest settings on average over {len(args.models)} models and {len(tasks)} tasks ({args.key}):")
        for settings, values in ranked[:8]:
            print(f"  {dict(settings)}: mean {np.mean(values):.3f}, per run {', '.join(f'{v:.3f}' for v in values)}")


def _figures(figures: dict) -> str:
    return ", ".join(f"{key} {value:.3f}" for key, value in figures.items())


if __name__ == "__main__":
    main()
