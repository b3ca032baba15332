"""Lazy image datasets: every model reads its images through these, one decode at a time.

An :class:`ImageDataset` keeps only the paths (or the caller's arrays) and their optional
region masks; item ``i`` is decoded, by the channel rule of :mod:`dfr.data.io`, when it is
reached. Models fit and predict over any number of images in memory that does not grow with
their number. :func:`chunks` reads a dataset in order through a ``torch.utils.data.DataLoader``
(with ``workers`` processes decoding ahead). The loaders here never draw from torch's global
random state (they have generators of their own), so reading does not change a model's
seeded training.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from dfr.data.io import ImageData, RegionMasks, decode_source, image_sources, read_image


class ImageDataset(Dataset):
    """Images (and their region masks) decoded on access.

    Args:
        data: anything :func:`dfr.data.io.load_images` takes (folder, paths, arrays).
        region_masks: ``None`` (whole images), one array (H, W) shared by every image, a
            stack (N, H, W), a list of arrays or mask paths, or a folder of mask images
            (natural order); pixels ``> 0`` are inside. Checked against each image when it
            is read.
        pairs: items are ``(image, region)`` (region bool (H, W), all ``True`` without
            masks) instead of images.

    Item ``i``: float32 (H, W, C) in [0, 1], or ``(image, region)`` with ``pairs``.
    """

    def __init__(self, data: ImageData, region_masks: RegionMasks = None, *, pairs: bool = False) -> None:
        self.sources, self.names = image_sources(data)
        self.region_sources = _region_sources(region_masks, len(self.sources))
        self.pairs = pairs
        self.indices = np.arange(len(self.sources))

    @property
    def has_regions(self) -> bool:
        return self.region_sources is not None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"image {index} of a dataset of {len(self)}")
        image, region = self.read(index)
        if not self.pairs:
            return image
        return image, np.ones(image.shape[:2], bool) if region is None else region

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Image ``index`` and its region (``None`` without region masks)."""
        source = int(self.indices[index])
        image = decode_source(self.sources[source], self.names[source])
        if self.region_sources is None:
            return image, None
        return image, _region(self.region_sources, source, image.shape[:2], self.names[source])

    def size(self, index: int) -> tuple[int, int]:
        """Image ``index``'s (height, width): an array's shape, or the decoded file's."""
        source = self.sources[int(self.indices[index])]
        if isinstance(source, np.ndarray):
            return tuple(source.shape[:2])
        return self.read(index)[0].shape[:2]

    def subset(self, indices: Sequence[int]) -> "ImageDataset":
        """The dataset restricted to ``indices`` (positions in this dataset), in that order."""
        subset = object.__new__(ImageDataset)
        subset.__dict__.update(self.__dict__)
        subset.indices = self.indices[np.asarray(indices, dtype=np.int64)]
        return subset

    def with_pairs(self, pairs: bool) -> "ImageDataset":
        """The same images, as ``(image, region)`` pairs or not."""
        view = self.subset(np.arange(len(self)))
        view.pairs = pairs
        return view

    def item_names(self) -> list[str]:
        """The names of the images in dataset order."""
        return [self.names[int(i)] for i in self.indices]


def chunks(dataset: ImageDataset, size: int, *, workers: int = 0) -> Iterator[tuple[list[str], list[np.ndarray], list | None]]:
    """(names, images, regions or ``None``) of ``size`` consecutive images at a time, in order.

    Read by a DataLoader: with ``workers`` > 0 that many processes decode ahead of the caller.
    """
    loader = DataLoader(_Indexed(dataset), batch_size=size, shuffle=False, num_workers=workers,
                        collate_fn=_as_lists, generator=torch.Generator())
    names = dataset.item_names()
    for indices, images, regions in loader:
        yield [names[i] for i in indices], images, None if not dataset.has_regions else regions


def batches(items: Sequence | Dataset, size: int, *, workers: int = 0) -> Iterator[list]:
    """Lists of ``size`` consecutive items (the last may be shorter), in order; a Dataset is
    read by a DataLoader with ``workers`` processes, a list in this process."""
    workers = workers if isinstance(items, Dataset) else 0
    return iter(DataLoader(items, batch_size=size, shuffle=False, num_workers=workers, collate_fn=list,
                           generator=torch.Generator()))


def training_loader(dataset: Dataset, batch_size: int, *, samples: int, seed: int, workers: int = 0,
                    device: torch.device, drop_last: bool = False) -> DataLoader:
    """Batches of ``samples`` items of ``dataset`` drawn without replacement in an order that a
    ``seed``-ed generator reshuffles each time the loader is iterated; on a GPU the batches
    come in pinned memory."""
    sampler = RandomSampler(dataset, num_samples=samples, generator=torch.Generator().manual_seed(seed))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", drop_last=drop_last, generator=torch.Generator())


class Mapped(Dataset):
    """``function(dataset[i])`` on access: a dataset of network inputs from a dataset of images."""

    def __init__(self, dataset: Dataset, function: Callable[[Any], Any]) -> None:
        self.dataset, self.function = dataset, function

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.function(self.dataset[index])


class _Indexed(Dataset):
    """``(index, image, region)`` items of an :class:`ImageDataset`."""

    def __init__(self, dataset: ImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray, np.ndarray | None]:
        return (index, *self.dataset.read(index))


def _as_lists(batch: list[tuple]) -> tuple[list, ...]:
    return tuple(list(column) for column in zip(*batch))


def _region_sources(region_masks: RegionMasks, count: int) -> list | np.ndarray | None:
    """Where each image's region comes from: ``None``, one shared (H, W) array, or one entry per image."""
    if region_masks is None:
        return None
    if isinstance(region_masks, np.ndarray) and region_masks.ndim == 2:
        return region_masks
    if isinstance(region_masks, np.ndarray) and region_masks.ndim == 3:
        sources = list(region_masks)
    elif isinstance(region_masks, (str, os.PathLike)):
        sources, _ = image_sources(region_masks)
    elif isinstance(region_masks, Sequence):
        sources = list(region_masks)
    else:
        raise TypeError(f"cannot read region masks from {type(region_masks).__name__}: give arrays, paths or a folder")
    if len(sources) != count:
        raise ValueError(f"got {len(sources)} region masks for {count} images")
    return sources


def _region(sources: list | np.ndarray, index: int, shape: tuple[int, int], name: str) -> np.ndarray:
    """Image ``index``'s region, bool (H, W), checked against its image's size ``shape``."""
    shared = isinstance(sources, np.ndarray)
    source = sources if shared else sources[index]
    is_path = isinstance(source, (str, os.PathLike))
    mask = read_image(source).max(axis=2) if is_path else np.asarray(source)
    label = f"region mask {os.fspath(source)}" if is_path else "the shared region mask" if shared else f"region mask {index}"
    if mask.shape != tuple(shape):
        raise ValueError(f"{label} has shape {mask.shape} but image {name} has size {tuple(shape)}")
    if not np.any(mask):
        raise ValueError(f"{label} is empty: no pixel > 0 (a mask must mark the region in any channel)")
    return mask > 0
