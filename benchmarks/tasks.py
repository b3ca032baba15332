"""Benchmark tasks: one dataset subset in memory, ready for models and metrics.

A task is what the suite runs every applicable model on: an MVTec category, a UCSD subset or
a pool image set, read through :mod:`benchmarks.datasets`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchmarks import datasets
from dfr import scoring
from dfr.io import read_image


@dataclass
class Task:
    """One benchmark unit.

    ``kind`` is ``"image"`` (MVTec, pool) or ``"video"`` (UCSD). For images ``train``/``test``
    are lists of float32 (H, W, C) images; for video they are lists of clips (T, H, W, C), and
    per-frame ground truth is concatenated over the test clips in order.

    Ground truth: ``masks`` bool (H, W) per test image or frame, or ``None`` where there is no
    pixel mask; ``image_labels`` bool per test image or frame; ``clip_lengths`` (video) the
    number of frames per test clip; ``boxes`` (pool) int (k, 4) per test image;
    ``region_masks`` (pool) bool (H, W) per image, for the models that take them.
    """

    dataset: str
    name: str
    kind: str
    train: list[np.ndarray]
    test: list[np.ndarray]
    test_names: list[str]
    masks: list[np.ndarray | None]
    image_labels: np.ndarray
    clip_lengths: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] | None = None
    train_regions: list[np.ndarray] | None = None
    test_regions: list[np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)

    def true_boxes(self) -> list[np.ndarray] | None:
        """Ground-truth boxes (k, 4) per test image or frame: the annotated ones (pool), else the
        8-connected components of the masks (MVTec-style data); ``None`` without either."""
        if self.boxes is not None:
            return [np.asarray(boxes).reshape(-1, 4) for boxes in self.boxes]
        if any(mask is None for mask in self.masks) or not any(mask.any() for mask in self.masks):
            return None
        return [scoring.boxes_from_mask(mask, mask.astype(np.float32), min_area=1)[:, :4] for mask in self.masks]

    @property
    def frames(self) -> list[np.ndarray]:
        """Test images, or every test frame of every clip in order."""
        return self.test if self.kind == "image" else [frame for clip in self.test for frame in clip]


def mvtec_tasks(root, categories=None) -> list[Task]:
    """One task per MVTec AD category under ``root``."""
    tasks = []
    for category in datasets.read_mvtec(root, categories):
        images, masks = datasets.load_test(category)
        tasks.append(Task(
            dataset="mvtec", name=category.name, kind="image",
            train=datasets.load_train(category), test=images,
            test_names=[f"{defect}_{path.stem}" for defect, path in zip(category.defects, category.test)],
            masks=masks, image_labels=np.asarray(category.labels, bool),
        ))
    return tasks


def ucsd_task(root) -> Task:
    """The UCSD subset (Ped1 or Ped2 folder) at ``root``; pixel masks only where ``_gt`` exists."""
    subset = datasets.read_ucsd(root)
    test = [datasets.load_clip(clip) for clip in subset.test_clips]
    masks: list[np.ndarray | None] = []
    for index, clip in enumerate(test):
        if index in subset.pixel_masks:
            masks += list(datasets.load_masks(subset.pixel_masks[index]))
        else:
            masks += [None] * len(clip)
    return Task(
        dataset="ucsd", name=subset.name, kind="video",
        train=[datasets.load_clip(clip) for clip in subset.train_clips], test=test,
        test_names=subset.test_names, masks=masks,
        image_labels=np.concatenate(subset.frame_labels), clip_lengths=[len(clip) for clip in test],
        notes=[subset.pixel_note],
    )


def pool_task(root, *, format: str | None = None, method: str = "object_free", seed: int = 0) -> Task:
    """Pool images: train on object-free (or inpainted) images, test on the rest; swimmers are the anomalies."""
    pool = datasets.read_pool(root, format=format)
    split = datasets.training_split(pool, method, seed=seed)
    test = [read_image(pool.images[index]) for index in split.test_indices]
    shapes = [image.shape[:2] for image in test]
    regions = None
    if pool.region_masks is not None:
        regions = [datasets.load_region_mask(pool, index, shape) for index, shape in zip(split.test_indices, shapes)]
    boxes = [pool.boxes[index] for index in split.test_indices]
    train_regions = None
    if regions is not None:
        train_regions = [
            datasets.load_region_mask(pool, index, image.shape[:2]) for index, image in zip(split.train_indices, split.train)
        ]
    return Task(
        dataset="pool", name="pool", kind="image", train=split.train, test=test,
        test_names=[pool.images[index].stem for index in split.test_indices],
        masks=[datasets.boxes_to_mask(b, shape) for b, shape in zip(boxes, shapes)],
        image_labels=np.array([len(b) > 0 for b in boxes]), boxes=boxes,
        train_regions=train_regions, test_regions=regions,
        notes=[f"pool: training split by {split.method}; {pool.format} annotations; "
               "pixel metrics use the swimmer boxes as masks"],
    )
