"""Tiles of large images: where they lie, how their maps blend into one, and a dataset of them.

A model with a fixed network input (``image_size``) either resizes a whole image to it or cuts
the image into overlapping tiles at their own resolution (:func:`tile_grid`), runs each tile
as an image of its own and blends the tile maps into one map at the image's size
(:class:`MapBlender`). Each tile map is weighted by a window (:func:`blend_window`) that falls
smoothly to almost zero over the overlap at the tile's borders, where a network sees padding
instead of the image: in an overlap the map passes gradually from one tile to the next, so no
seam shows, and at the image's own border, covered by one tile only, the weights cancel out.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Sequence

import numpy as np

#: A box of an image: ``(top, left, height, width)`` in pixels.
Box = tuple[int, int, int, int]
#: Smallest weight of the blending window (at a tile's corner pixel); keeps every pixel covered.
WINDOW_FLOOR = 1e-6


def as_size(value: Any) -> tuple[int, int]:
    """A size as ``(height, width)``: an int ``S`` (a square), a pair, or text ``"HxW"`` / ``"S"``."""
    if isinstance(value, str):
        parts = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", value)
        if parts is None:
            raise ValueError(f"size {value!r} is not 'S' or 'HxW' (height x width in pixels)")
        value = [int(parts.group(1)), int(parts.group(2) or parts.group(1))]
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, Sequence) and len(value) == 2 and all(
            isinstance(side, (int, np.integer)) and not isinstance(side, bool) for side in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"size {value!r} is not an int or a (height, width) pair")


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start of each tile along an axis of ``length`` pixels: the fewest tiles of ``tile``
    pixels that overlap by at least ``overlap``, spread evenly from one end to the other
    (one tile, of the whole length, when ``length <= tile``)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(k * (length - tile) / (count - 1)) for k in range(count)]


def tile_grid(height: int, width: int, tile: tuple[int, int], overlap: tuple[int, int]) -> list[Box]:
    """Boxes of the tiles of a ``height`` x ``width`` image, row by row: ``tile`` (h, w) pixels
    each (less on an axis shorter than the tile), neighbours overlapping by ``overlap`` (h, w) or more."""
    rows = axis_starts(height, tile[0], overlap[0])
    columns = axis_starts(width, tile[1], overlap[1])
    return [(top, left, min(tile[0], height), min(tile[1], width)) for top in rows for left in columns]


def _ramp(length: int, overlap: int) -> np.ndarray:
    """1-D weights: a raised-cosine rise over ``overlap`` pixels at each end, 1 in between."""
    if overlap <= 0:
        return np.ones(length, np.float32)
    distance = np.minimum(np.arange(length), np.arange(length)[::-1]) + 0.5
    rise = np.sin(0.5 * np.pi * np.clip(distance / overlap, 0.0, 1.0)) ** 2
    return np.maximum(rise, math.sqrt(WINDOW_FLOOR)).astype(np.float32)


def blend_window(height: int, width: int, overlap: tuple[int, int]) -> np.ndarray:
    """Weights (height, width) of one tile's map in the blend: the outer product of two
    raised-cosine ramps over ``overlap`` (h, w) pixels, at least ``WINDOW_FLOOR``."""
    return np.outer(_ramp(height, overlap[0]), _ramp(width, overlap[1]))


class MapBlender:
    """The weighted mean of tile maps over a (height, width) image, filled one tile at a time.

    Memory: two float32 (height, width) arrays, whatever the number of tiles.
    """

    def __init__(self, height: int, width: int, overlap: tuple[int, int]) -> None:
        self.total = np.zeros((height, width), np.float32)
        self.weight = np.zeros((height, width), np.float32)
        self.overlap = overlap

    def add(self, box: Box, tile_map: np.ndarray) -> None:
        """Add the map (h, w) of the tile at ``box``."""
        top, left, height, width = box
        window = blend_window(height, width, self.overlap)
        self.total[top:top + height, left:left + width] += tile_map * window
        self.weight[top:top + height, left:left + width] += window

    def result(self) -> np.ndarray:
        """The blended map, float32 (height, width); every pixel must have been covered."""
        return np.divide(self.total, self.weight, out=self.total)


def blended_map(image: np.ndarray, boxes: list[Box], overlap: tuple[int, int],
                tile_maps: Callable[[list[np.ndarray]], list[np.ndarray]], batch: int) -> np.ndarray:
    """One image's map from its tiles: ``tile_maps`` (crops → maps at the crops' sizes) runs on
    ``batch`` tiles at a time, and their maps are blended (:class:`MapBlender`)."""
    blender = MapBlender(*image.shape[:2], overlap)
    for start in range(0, len(boxes), batch):
        part = boxes[start:start + batch]
        crops = [image[top:top + height, left:left + width] for top, left, height, width in part]
        for box, tile_map in zip(part, tile_maps(crops)):
            blender.add(box, tile_map)
    return blender.result()


class TileDataset:
    """The tiles of every image of a dataset, as a dataset of images: what a tiled model trains on.

    ``images`` is an :class:`dfr.data.ImageDataset` (or a subset of it) and ``boxes(height,
    width)`` gives an image's tile boxes. Item ``k`` is the crop of tile ``k`` (tiles in image
    order, then row by row), with its region's crop when the dataset gives pairs. The last
    image read is kept, so reading the tiles in order decodes each image once (and once more
    when the dataset is built, to learn the sizes).
    """

    def __init__(self, images: Any, boxes: Callable[[int, int], list[Box]]) -> None:
        self.images = images
        self.tiles = [(index, box) for index in range(len(images)) for box in boxes(*images.size(index))]
        self._last: tuple[int, Any] | None = None

    @property
    def pairs(self) -> bool:
        return self.images.pairs

    @property
    def has_regions(self) -> bool:
        return self.images.has_regions

    def __len__(self) -> int:
        return len(self.tiles)

    def _image(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self._last is None or self._last[0] != index:
            self._last = (index, self.images.read(index))
        return self._last[1]

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Tile ``index``'s crop and its region's crop (``None`` without region masks)."""
        image_index, (top, left, height, width) = self.tiles[index]
        image, region = self._image(image_index)
        window = (slice(top, top + height), slice(left, left + width))
        return image[window], None if region is None else region[window]

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"tile {index} of a dataset of {len(self)}")
        crop, region = self.read(index % len(self))
        if not self.pairs:
            return crop
        return crop, np.ones(crop.shape[:2], bool) if region is None else region

    def size(self, index: int) -> tuple[int, int]:
        """Tile ``index``'s (height, width)."""
        return self.tiles[index][1][2:]

    def subset(self, indices: Sequence[int]) -> "TileDataset":
        """The tiles ``indices`` (positions in this dataset), in that order."""
        subset = object.__new__(TileDataset)
        subset.images, subset._last = self.images, None
        subset.tiles = [self.tiles[int(index)] for index in indices]
        return subset

    def with_pairs(self, pairs: bool) -> "TileDataset":
        """The same tiles, as ``(crop, region)`` pairs or not."""
        view = self.subset(range(len(self)))
        view.images = self.images.with_pairs(pairs)
        return view

    def item_names(self) -> list[str]:
        """``<image name>@<top>,<left>`` per tile."""
        names = self.images.item_names()
        return [f"{names[index]}@{top},{left}" for index, (top, left, _, _) in self.tiles]
