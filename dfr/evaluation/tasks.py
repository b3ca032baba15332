"""Evaluation tasks: one labelled dataset subset, listed but not read.

A task is what ``dfr bench`` fits and evaluates every applicable model on, and what ``dfr
evaluate`` runs a saved model on: an MVTec category, a UCSD subset or a pool image set, read
through :mod:`dfr.data.readers`. A task holds file paths: images and frames are read when a
model reaches them, the training data only when a model is fitted, and pixel masks only
after prediction, at the size of each prediction.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dfr import scoring
from dfr.data import readers

#: A mask source meaning "no anomalous pixel" (a normal test image).
NORMAL = "normal"
#: Scoring of the pool case, for every model on pool data: a fixed camera, so maps are
#: divided by their normal level per position (lane ropes); swimmers are a few pixels across,
#: so maps are smoothed with σ = 1 pixel instead of the default 4, with stricter seeds, an
#: opening and closing of 2 % of the shorter side, and no peak cut (chosen on the validation
#: split, docs/boxes.md).
POOL_SCORING = {"smoothing_sigma": 1.0, "normalise_positions": True, "seed_ratio": 2.5, "opening": 0.02,
                "closing": 0.02, "peak_fraction": 0.0}


@dataclass
class Task:
    """One evaluation unit.

    ``kind`` is ``"image"`` (MVTec, pool) or ``"video"`` (UCSD). ``test`` holds the test image
    paths, or for video the test clips (each a list of frame paths); ground truth is per test
    image or frame, concatenated over the clips in order.

    ``mask_sources``: per test image or frame, a mask file, :data:`NORMAL` (no anomalous
    pixel) or ``None`` (no pixel labels); ``boxes`` (pool): the annotated boxes (k, 4) per test
    image, whose union is the mask. ``image_labels``: bool per test image or frame;
    ``clip_lengths`` (video): frames per test clip. ``training_data()`` returns what models are
    fitted on (paths, or arrays where they had to be made); ``train_regions`` /
    ``test_regions`` (pool): region mask files for the models that take them; ``scoring``: the
    scoring settings every model gets on this dataset (``None``: the defaults).
    """

    dataset: str
    name: str
    kind: str
    test: list[Any]
    test_names: list[str]
    image_labels: np.ndarray
    mask_sources: list[Path | str | None]
    training_data: Callable[[], list[Any]]
    clip_lengths: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] | None = None
    train_regions: list[Path] | None = None
    test_regions: list[Path] | None = None
    scoring: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def frames(self) -> list[Any]:
        """Test images, or every test frame of every clip in order (paths)."""
        return self.test if self.kind == "image" else [frame for clip in self.test for frame in clip]

    @property
    def item_names(self) -> list[str]:
        """Output name of each test image, or ``<clip>_<frame index>`` of each test frame."""
        if self.kind == "image":
            return self.test_names
        return [f"{clip}_{index:03d}" for clip, length in zip(self.test_names, self.clip_lengths)
                for index in range(length)]

    def masks(self, shapes: list[tuple[int, int]]) -> list[np.ndarray | None]:
        """bool (H, W) ground truth of each test image or frame at its (H, W) in ``shapes``
        (``None`` where there are no pixel labels)."""
        if self.boxes is not None:
            return [readers.boxes_to_mask(boxes, shape) for boxes, shape in zip(self.boxes, shapes)]
        return [None if source is None else np.zeros(shape, bool) if source == NORMAL else readers.load_mask(source, shape)
                for source, shape in zip(self.mask_sources, shapes)]

    def true_boxes(self, masks: list[np.ndarray | None]) -> list[np.ndarray] | None:
        """Ground-truth boxes (k, 4) per test image or frame: the annotated ones (pool), else the
        8-connected components of ``masks`` (MVTec-style data); ``None`` without either."""
        if self.boxes is not None:
            return [np.asarray(boxes).reshape(-1, 4) for boxes in self.boxes]
        if any(mask is None for mask in masks) or not any(mask.any() for mask in masks):
            return None
        return [scoring.boxes_from_mask(mask, mask.astype(np.float32), min_area=1)[:, :4] for mask in masks]


def mvtec_tasks(root: str | os.PathLike, categories: list[str] | None = None) -> list[Task]:
    """One task per MVTec AD category under ``root``."""
    tasks = []
    for category in readers.read_mvtec(root, categories):
        tasks.append(Task(
            dataset="mvtec", name=category.name, kind="image", test=list(category.test),
            test_names=[f"{defect}_{path.stem}" for defect, path in zip(category.defects, category.test)],
            image_labels=np.asarray(category.labels, bool),
            mask_sources=[NORMAL if mask is None else mask for mask in category.masks],
            training_data=lambda category=category: list(category.train),
        ))
    return tasks


def ucsd_task(root: str | os.PathLike) -> Task:
    """The UCSD subset (Ped1 or Ped2 folder) at ``root``; pixel masks only where ``_gt`` exists."""
    subset = readers.read_ucsd(root)
    sources: list[Path | None] = []
    for index, clip in enumerate(subset.test_clips):
        sources += list(subset.pixel_masks[index]) if index in subset.pixel_masks else [None] * len(clip)
    return Task(
        dataset="ucsd", name=subset.name, kind="video", test=[list(clip) for clip in subset.test_clips],
        test_names=subset.test_names, image_labels=np.concatenate(subset.frame_labels), mask_sources=sources,
        training_data=lambda: [list(clip) for clip in subset.train_clips],
        clip_lengths=[len(clip) for clip in subset.test_clips], notes=[subset.pixel_note],
    )


def pool_task(root: str | os.PathLike, *, format: str | None = None, method: str = "object_free", seed: int = 0) -> Task:
    """Pool images: train on object-free (or inpainted) images, test on the rest; swimmers are the anomalies."""
    pool = readers.read_pool(root, format=format)
    split = readers.split_indices(pool, method, seed=seed)
    regions = pool.region_masks
    return Task(
        dataset="pool", name="pool", kind="image", test=[pool.images[index] for index in split.test_indices],
        test_names=[pool.images[index].stem for index in split.test_indices],
        image_labels=np.array([len(pool.boxes[index]) > 0 for index in split.test_indices]),
        mask_sources=[None] * len(split.test_indices),
        training_data=lambda: readers.training_images(pool, split),
        boxes=[pool.boxes[index] for index in split.test_indices],
        train_regions=None if regions is None else [regions[index] for index in split.train_indices],
        test_regions=None if regions is None else [regions[index] for index in split.test_indices],
        scoring=POOL_SCORING,
        notes=[f"pool: training split by {split.method}; {pool.format} annotations; "
               "pixel metrics use the swimmer boxes as masks"],
    )
