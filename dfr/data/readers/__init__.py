"""Readers of the real dataset layouts: MVTec AD, UCSD Ped1/Ped2 and pool images with box annotations.

Readers list files and check the layout (pairings, label counts, frame counts) without
decoding images, except where a check needs it; ``load_*`` helpers return arrays by the
channel rule of :mod:`dfr.data.io`.
"""
from dfr.data.readers.mvtec import (
    MVTecCategory,
    load_mask,
    load_test,
    load_train,
    read_mvtec,
    read_mvtec_category,
)
from dfr.data.readers.pool import (
    PoolDataset,
    PoolSplit,
    boxes_to_mask,
    detect_formats,
    inpaint_training_images,
    load_region_mask,
    read_pool,
    split_indices,
    training_images,
    training_split,
)
from dfr.data.readers.ucsd import (
    UCSDDataset,
    labels_to_ranges,
    load_clip,
    load_masks,
    parse_label_file,
    ranges_to_labels,
    read_ucsd,
)

__all__ = [
    "MVTecCategory", "PoolDataset", "PoolSplit", "UCSDDataset", "boxes_to_mask", "detect_formats",
    "inpaint_training_images", "labels_to_ranges", "load_clip", "load_mask", "load_masks", "load_region_mask",
    "load_test", "load_train", "parse_label_file", "ranges_to_labels", "read_mvtec", "read_mvtec_category",
    "read_pool", "read_ucsd", "split_indices", "training_images", "training_split",
]
