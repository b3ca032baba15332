"""The base of image models with a fixed network input: whole images resized to it, or tiles.

A :class:`TiledModel` names the size of its network input (:meth:`TiledModel.network_size`)
and maps a list of images, each resized to that size, in ``_view_maps``. This class decides,
image by image, whether the image goes to the network whole or in tiles (:meth:`TiledModel.tiles`),
trains on the tiles of the training images and blends the maps of the tiles into one map at
the image's size (:mod:`dfr.data.tiles`). Everything built on ``_maps`` (``predict``,
``predict_iter``, ``stream``, ``dfr evaluate``, torchrun, models loaded from ONNX, whose graph
stays the per-tile network) tiles alike. See docs/large_images.md.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dfr.api import params
from dfr.api.model import AnomalyModel
from dfr.data.tiles import Box, TileDataset, as_size, blended_map, tile_grid

#: ``tile_size="auto"`` tiles an image when fitting it into the network input would shrink it
#: by more than this factor along either axis (docs/large_images.md).
AUTO_SCALE = 2.0
#: Tiles mapped at a time: memory is bounded by these, not by the image.
TILE_BATCH = 16


def _tile_side(side: Any) -> bool:
    return side >= 16


class TiledModel(AnomalyModel):
    """An image model whose network takes a fixed size, with tiling of large images.

    Subclasses implement :meth:`network_size` and ``_view_maps(images)`` (one map per image at
    the image's own size, each image resized to the network size), in place of ``_maps``.

    Args:
        tile_size: ``None``: every image is resized whole to the network input (the only
            behaviour before tiling existed). ``"auto"``: an image that would be shrunk by more
            than ``AUTO_SCALE`` = 2 along either axis is cut into tiles of the network size at
            its own resolution; smaller images are resized whole. A size (``S``, ``(h, w)`` or
            ``"HxW"``, in input pixels): every image is cut into tiles of that size, each
            resized to the network input (an image smaller than a tile makes one tile).
        tile_overlap: overlap of neighbouring tiles as a fraction of the tile side, in [0, 0.5);
            the tile maps are blended over it by a raised-cosine window, so no seam shows.
        common: ``scoring``, ``seed``, ``device``; see :class:`dfr.AnomalyModel`.
    """

    PARAMETERS = {
        "tile_size": params.one_of(params.size_rule(_tile_side, "at least 16", rectangles=True), "auto", None),
        "tile_overlap": params.interval(0, 0.5, high_open=True),
    }

    def __init__(self, *, tile_size: int | tuple[int, int] | str | None = "auto", tile_overlap: float = 0.125,
                 **common: Any) -> None:
        super().__init__(**common)
        self.tile_size = tile_size
        self.tile_overlap = tile_overlap

    def network_size(self) -> tuple[int, int]:
        """(height, width) of the network input in pixels."""
        raise NotImplementedError

    def tile_shape(self) -> tuple[int, int] | None:
        """(height, width) of a tile in input pixels, or ``None`` when ``tile_size`` is ``None``."""
        if self.tile_size is None:
            return None
        return self.network_size() if self.tile_size == "auto" else as_size(self.tile_size)

    def tiles(self, height: int, width: int) -> list[Box] | None:
        """The tiles ``(top, left, height, width)`` of an image of ``height`` x ``width`` pixels,
        or ``None`` when the image goes to the network whole (see ``tile_size``)."""
        shape = self.tile_shape()
        if shape is None:
            return None
        if self.tile_size == "auto":
            network = self.network_size()
            if max(height / network[0], width / network[1]) <= AUTO_SCALE:
                return None
        return tile_grid(height, width, shape, self._overlap())

    def tiling_spec(self) -> dict[str, Any]:
        """How images are cut before the network (recorded in exported models' input spec)."""
        shape = self.tile_shape()
        if shape is None:
            return {"tiling": None}
        when = (f"when the image is more than {AUTO_SCALE:g} times the network input along an axis"
                if self.tile_size == "auto" else "always")
        return {"tiling": {"tile_size": list(shape), "overlap": list(self._overlap()), "when": when,
                           "blend": "weighted mean, raised-cosine window over the overlap (dfr.data.tiles)"}}

    def _overlap(self) -> tuple[int, int]:
        shape = self.tile_shape()
        return (0, 0) if shape is None else (round(self.tile_overlap * shape[0]), round(self.tile_overlap * shape[1]))

    # ----------------------------------------------------------------- hooks of AnomalyModel

    def _training_items(self, items: Any) -> Any:
        if self.tile_shape() is None:
            return items
        return TileDataset(items, lambda height, width: self.tiles(height, width) or [(0, 0, height, width)])

    def _maps(self, images: list[np.ndarray]) -> list[np.ndarray]:
        grids = [self.tiles(*image.shape[:2]) for image in images]
        whole = [index for index, grid in enumerate(grids) if grid is None]
        maps: list[np.ndarray | None] = [None] * len(images)
        for index, anomaly_map in zip(whole, self._view_maps([images[index] for index in whole])):
            maps[index] = anomaly_map
        for index, grid in enumerate(grids):
            if grid is not None:
                maps[index] = blended_map(images[index], grid, self._overlap(), self._view_maps, TILE_BATCH)
        return maps

    def _view_maps(self, images: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError
