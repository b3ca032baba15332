"""Write the generated benchmark data of one split to disk, for ``dfr bench`` and the tuning scripts.

Two disjoint seeds make two splits of the same generators: settings are chosen on
``validation`` (``benchmarks/tune_boxes.py``) and reported on ``test``::

    python benchmarks/write_data.py --dataset pool --split test --out data/pool-test
    dfr bench --dataset pool --root data/pool-test --models poolae,memory-bank-effnet --out bench/pool

Pool: 60 images of 180x320, 40 % without swimmers (the training images). MVTec-style: the
textures brick, grass and gravel, 40 training and 24 test crops of 256² each, cut from the
whole photo: the left and right halves of a photo differ in lighting, and with training and
test crops from different halves (``disjoint=True``, the protocol of
``benchmarks/compare_heads.py``, which scores rankings only) a threshold fitted on training
crops flags most of every test crop, which no box metric survives.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dfr.data import synthetic
from dfr.evaluation.tasks import Task, mvtec_tasks, pool_task

SPLIT_SEEDS = {"validation": 1000, "test": 2000}
POOL_IMAGES = 60
MVTEC_TEXTURES = ("brick", "grass", "gravel")


def write_split(dataset: str, root: Path, split: str, *, overwrite: bool = False) -> list[Task]:
    """Write ``dataset`` (``"pool"`` or ``"mvtec"``) for ``split`` under ``root``; its tasks."""
    seed = SPLIT_SEEDS[split]
    if dataset == "pool":
        synthetic.write_pool_like(root, n_images=POOL_IMAGES, seed=seed, formats=("coco",), overwrite=overwrite)
        return [pool_task(root, seed=seed)]
    synthetic.write_mvtec_like(root, MVTEC_TEXTURES, n_train=40, n_test=24, size=256, seed=seed, disjoint=False,
                              overwrite=overwrite)
    return mvtec_tasks(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("pool", "mvtec"), required=True)
    parser.add_argument("--split", choices=sorted(SPLIT_SEEDS), required=True)
    parser.add_argument("--out", required=True, help="folder to write (must be new or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    args = parser.parse_args()
    tasks = write_split(args.dataset, Path(args.out), args.split, overwrite=args.overwrite)
    print(f"wrote {args.dataset} ({args.split} split): "
          + "; ".join(f"{task.name}: {len(task.training_data())} training, {len(task.test)} test images" for task in tasks))


if __name__ == "__main__":
    main()
