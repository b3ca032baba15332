"""Clips of video frames, read on access: what the video models fit on and predict.

A clip is a folder of frames (naturally sorted) or an array (T, H, W[, C]); frames follow the
channel rule of :mod:`dfr.data.io` and are then converted to gray.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset

from dfr.data.io import decode_source, list_images, to_gray


class ClipDataset(Dataset):
    """Clips whose frames are read on access.

    ``data``: a folder of frames (naturally sorted), a list of such folders, a list of clips
    each given as its list of frame files, one array (T, H, W) or (T, H, W, C), or a list of
    such arrays. Item ``i`` is clip ``i`` as float32 (T, H, W) gray in [0, 1]; :meth:`frames`
    reads only some of its frames.
    """

    def __init__(self, data: Any) -> None:
        if isinstance(data, (str, os.PathLike, np.ndarray)):
            data = [data]
        if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
            raise TypeError(f"cannot read clips from {type(data).__name__}: give a folder of frames, folders or arrays")
        if len(data) == 0:
            raise ValueError("got an empty list of clips")
        if not (all(isinstance(item, (str, os.PathLike)) for item in data)
                or all(isinstance(item, np.ndarray) for item in data)
                or all(isinstance(item, (list, tuple)) for item in data)):
            raise TypeError("a list of clips must hold only folders, only lists of frame files or only arrays "
                            "(T, H, W[, C])")
        self.sources = [_clip_sources(clip, index) for index, clip in enumerate(data)]
        folders = [_folder(clip) for clip in data]
        self.names = [f"clip_{index}" if folder is None else folder.name for index, folder in enumerate(folders)]
        self.labels = [f"clip {index}" if folder is None else os.fspath(folder) for index, folder in enumerate(folders)]

    has_regions = False

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"clip {index} of {len(self)}")
        return gray_clip(self.frames(index), self.labels[index])

    def lengths(self) -> list[int]:
        """Frames per clip."""
        return [len(sources) for sources in self.sources]

    def frames(self, index: int, which: Sequence[int] | None = None) -> list[np.ndarray]:
        """Frames ``which`` (default: all) of clip ``index`` by the channel rule, colour kept."""
        sources = self.sources[index]
        chosen = range(len(sources)) if which is None else which
        try:
            return [decode_source(sources[t], f"frame_{t}") for t in chosen]
        except ValueError as error:
            raise ValueError(f"{self.labels[index]}: {error}") from None

    def size(self, index: int) -> tuple[int, int]:
        """(height, width) of clip ``index``'s frames (its first frame read)."""
        return self.frames(index, [0])[0].shape[:2]

    def subset(self, indices: Sequence[int]) -> "ClipDataset":
        """The clips ``indices``, in that order."""
        return self._with([(self.sources[i], self.names[i], self.labels[i]) for i in indices])

    def frame_range(self, index: int, start: int, stop: int) -> "ClipDataset":
        """Clip ``index`` cut to its frames ``start:stop``, as a dataset of one clip."""
        return self._with([(self.sources[index][start:stop], self.names[index], self.labels[index])])

    def with_pairs(self, pairs: bool) -> "ClipDataset":
        """The same clips (clips have no region masks to pair with)."""
        return self

    def _with(self, clips: list[tuple[list, str, str]]) -> "ClipDataset":
        subset = object.__new__(ClipDataset)
        subset.sources, subset.names, subset.labels = ([clip[part] for clip in clips] for part in range(3))
        return subset


def gray_clip(frames: list[np.ndarray], label: str) -> np.ndarray:
    """A clip's frames (H, W, C) as one float32 (T, H, W) gray array; frames must share a size."""
    shapes = {frame.shape[:2] for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"{label}: frames differ in size ({sorted(shapes)}); all frames of a clip must share one size")
    return np.stack([to_gray(frame) for frame in frames])


def _folder(clip: Any) -> Path | None:
    """The folder a clip's frames are in (``None`` for an array)."""
    if isinstance(clip, (str, os.PathLike)):
        return Path(clip)
    if isinstance(clip, (list, tuple)) and clip:
        return Path(clip[0]).parent
    return None


def _clip_sources(clip: Any, index: int) -> list:
    """One clip's frames unread: the folder's or list's image paths, or the array's frames."""
    if isinstance(clip, (list, tuple)):
        if not clip or not all(isinstance(frame, (str, os.PathLike)) for frame in clip):
            raise ValueError(f"clip {index}: a clip given as a list must list its frame files (at least one)")
        return [Path(frame) for frame in clip]
    if isinstance(clip, (str, os.PathLike)):
        folder = Path(clip)
        if not folder.exists():
            raise FileNotFoundError(f"{folder}: no such folder of frames")
        if not folder.is_dir():
            raise ValueError(f"{folder}: a clip must be a folder of frames (extract the frames of a video file first)")
        return list_images(folder)
    if clip.ndim not in (3, 4) or (clip.ndim == 3 and clip.shape[2] <= 4):
        raise ValueError(f"clip {index}: expected an array (T, H, W) or (T, H, W, C), got shape {clip.shape}; "
                         "a single frame is a clip of one frame: pass frame[None]")
    if len(clip) == 0:
        raise ValueError(f"clip {index} has no frames")
    return list(clip)
