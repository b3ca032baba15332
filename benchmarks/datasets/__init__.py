"""Readers for the benchmark datasets' real layouts and seeded synthetic stand-ins.

Readers list files and check the layout (pairings, label counts, frame counts) without
decoding images, except where a check needs it; ``load_*`` helpers return arrays by the
channel rule of ``dfr.io``. Each generator writes the same layout as its reader expects and
returns what it wrote, so the two can be checked against each other.
"""
from .mvtec import MVTecCategory, load_mask, load_test, load_train, read_mvtec, read_mvtec_category
from .pool import (
    PoolDataset,
    PoolSplit,
    boxes_to_mask,
    detect_formats,
    inpaint_training_images,
    load_region_mask,
    read_pool,
    training_split,
)
from .synthetic_mvtec import write_mvtec_like
from .synthetic_pool import SyntheticPool, write_pool_like
from .synthetic_ucsd import SyntheticUCSD, write_ucsd_like
from .ucsd import UCSDDataset, labels_to_ranges, load_clip, load_masks, parse_label_file, ranges_to_labels, read_ucsd

__all__ = [
    "MVTecCategory", "PoolDataset", "PoolSplit", "SyntheticPool", "SyntheticUCSD", "UCSDDataset",
    "boxes_to_mask", "detect_formats", "inpaint_training_images", "labels_to_ranges", "load_clip",
    "load_mask", "load_masks", "load_region_mask", "load_test", "load_train", "parse_label_file",
    "ranges_to_labels", "read_mvtec", "read_mvtec_category", "read_pool", "read_ucsd", "training_split",
    "write_mvtec_like", "write_pool_like", "write_ucsd_like",
]
