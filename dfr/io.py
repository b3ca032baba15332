"""Reading images from folders, paths and arrays into one consistent form.

The channel rule, shared by every model: images come back as float32 arrays (H, W, C) in
[0, 1] with C = 1 for grayscale (gray + alpha keeps only the gray) and C = 3 for colour
(RGBA drops the alpha channel). uint8 is divided by 255, uint16 by 65535; float inputs must
already lie in [0, 1]. Models convert further themselves (DFR stacks gray to 3 channels).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

ImageData = Union[str, os.PathLike, np.ndarray, Sequence[Union[str, os.PathLike, np.ndarray]]]
#: Region masks: None, one array (H, W), a stack (N, H, W), a list of arrays or paths, or a folder
#: (read by :class:`dfr.data.ImageDataset`).
RegionMasks = Union[None, str, os.PathLike, np.ndarray, Sequence[Union[str, os.PathLike, np.ndarray]]]


def natural_key(name: str) -> list:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, naturally sorted.

    Suffixes are matched case-insensitively; hidden files and macOS ``._*`` files are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    paths = [
        path
        for path in folder.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not paths:
        patterns = ", ".join(f"*{suffix}" for suffix in IMAGE_SUFFIXES)
        raise ValueError(f"{folder}: no images found (searched {patterns}, any letter case)")
    return sorted(paths, key=lambda path: natural_key(path.name))


def list_clip_folders(folder: str | os.PathLike) -> list[Path]:
    """The clips in ``folder``: its subfolders that hold images, naturally sorted, or ``folder`` itself.

    Hidden folders and ground-truth folders named ``*_gt`` (the UCSD layout) are skipped. A
    folder without such subfolders is one clip.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (a clip is a folder of frames)")
    clips = [
        path for path in folder.iterdir()
        if path.is_dir() and not path.name.startswith(".") and not path.name.endswith("_gt")
        and any(p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") for p in path.iterdir())
    ]
    return sorted(clips, key=lambda path: natural_key(path.name)) or [folder]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file and apply the channel rule: float32 (H, W, C) in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if image is None:
        raise ValueError(f"{path}: cannot decode the file as an image (corrupt or not an image)")
    if image.ndim == 3 and image.shape[2] >= 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    try:
        return to_float_image(image)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def to_float_image(image: np.ndarray) -> np.ndarray:
    """Apply the channel rule to one array (H, W) or (H, W, C): float32 (H, W, 1|3) in [0, 1]."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image (H, W) or (H, W, C) with C in 1..4, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image has an empty side: shape {image.shape}")
    image = image[:, :, :1] if image.shape[2] == 2 else image[:, :, :3]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if image.dtype == np.bool_:
        return image.astype(np.float32)
    if np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32)
        if not np.isfinite(image).all():
            raise ValueError("float image contains NaN or infinity")
        if image.min() < 0.0 or image.max() > 1.0:
            raise ValueError(
                f"float images must lie in [0, 1], got values in [{image.min():.4g}, {image.max():.4g}]"
            )
        return image
    raise ValueError(f"unsupported pixel type {image.dtype}: use uint8, uint16 or float in [0, 1]")


def load_images(data: ImageData) -> tuple[list[np.ndarray], list[str]]:
    """Turn any accepted input into a list of float32 images (H, W, C) and their names.

    ``data`` may be a folder, one image path, a list of paths, one array (H, W) or (H, W, C),
    a stack (N, H, W) or (N, H, W, C), or a list of arrays. A 3-D array whose last axis has
    1 to 4 entries is read as one image; any other 3-D array as a stack of gray images.
    Names are file names for paths and ``image_<i>`` for arrays.
    """
    sources, names = image_sources(data)
    return [decode_source(source, name) for source, name in zip(sources, names)], names


def image_sources(data: ImageData) -> tuple[list[Path | np.ndarray], list[str]]:
    """What :func:`load_images` would read, without decoding: one path or array per image, and
    the images' names. Lets a caller read a long list in batches (``model.predict_iter``)."""
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        paths = list_images(path) if path.is_dir() else [path]
        return list(paths), [p.name for p in paths]
    if isinstance(data, np.ndarray):
        if data.ndim == 2 or (data.ndim == 3 and data.shape[2] <= 4):
            items = [data]
        elif data.ndim in (3, 4):
            items = list(data)
        else:
            raise ValueError(f"expected an image array (H, W[, C]) or a stack (N, H, W[, C]), got shape {data.shape}")
        if not items:
            raise ValueError("got an empty stack of images")
        return items, [f"image_{index}" for index in range(len(items))]
    if isinstance(data, Sequence):
        if len(data) == 0:
            raise ValueError("got an empty list of images")
        if all(isinstance(item, (str, os.PathLike)) for item in data):
            return [Path(p) for p in data], [Path(p).name for p in data]
        if all(isinstance(item, np.ndarray) for item in data):
            return list(data), [f"image_{index}" for index in range(len(data))]
        raise TypeError("a list of images must hold only paths or only numpy arrays")
    raise TypeError(f"cannot read images from {type(data).__name__}: give a folder, paths or arrays")


def decode_source(source: Path | np.ndarray, name: str) -> np.ndarray:
    """One image from :func:`image_sources` (a file read, an array checked) by the channel rule."""
    if not isinstance(source, np.ndarray):
        return read_image(source)
    try:
        return to_float_image(np.asarray(source))
    except ValueError as error:
        raise ValueError(f"{name.replace('_', ' ')}: {error}") from None


def stack_if_same_size(maps: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One (N, H, W) array when all maps share a size, else the list itself."""
    if len({m.shape for m in maps}) == 1:
        return np.stack(maps)
    return maps
