"""Reading images from folders, paths and arrays into one consistent form.

The channel rule, shared by every model: images come back as float32 arrays (H, W, C) in
[0, 1] with C = 1 for grayscale (gray + alpha keeps only the gray) and C = 3 for colour
(RGBA drops the alpha channel). uint8 is divided by 255, uint16 by 65535; float inputs must
already lie in [0, 1]. Models convert further themselves (DFR stacks gray to 3 channels).

Files are decoded by their contents, whatever their suffix, and turned as their EXIF
orientation says; palette and CMYK images come back as colour. A PNG, JPEG, BMP or TIFF whose
header declares more than ``MAX_IMAGE_PIXELS`` pixels, or a side over ``MAX_IMAGE_SIDE``, is
refused before it is decoded.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence, Union

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Largest image read, in pixels (width x height as the file's header declares them): 2**27,
#: e.g. 11585 x 11585, which takes 1.5 GiB as float32 RGB.
MAX_IMAGE_PIXELS = 2**27
#: Longest side read, in pixels: OpenCV's own limit (CV_IO_MAX_IMAGE_WIDTH and _HEIGHT).
MAX_IMAGE_SIDE = 2**20
#: Bytes read for :func:`declared_size`: enough for JPEG headers with large EXIF blocks.
HEADER_BYTES = 1 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type (the IHDR byte at offset 25) of gray with an alpha channel.
PNG_GRAY_ALPHA = 4

ImageData = Union[str, os.PathLike, np.ndarray, Sequence[Union[str, os.PathLike, np.ndarray]]]
#: Region masks: None, one array (H, W), a stack (N, H, W), a list of arrays or paths, or a folder
#: (read by :class:`dfr.data.ImageDataset`).
RegionMasks = Union[None, str, os.PathLike, np.ndarray, Sequence[Union[str, os.PathLike, np.ndarray]]]


def natural_key(name: str) -> list:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(part) if part.isdecimal() else part.lower() for part in re.split(r"(\d+)", name)]


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
        if path.is_symlink():
            raise FileNotFoundError(f"{path}: symbolic link to nothing (broken, or a loop of links)")
        raise FileNotFoundError(f"{path}: no such file")
    raw = np.fromfile(path, dtype=np.uint8)
    if not raw.size:
        raise ValueError(f"{path}: empty file (0 bytes), not an image")
    size = declared_size(raw[:HEADER_BYTES].tobytes())
    if size is not None and (size[0] * size[1] > MAX_IMAGE_PIXELS or max(size) > MAX_IMAGE_SIDE):
        raise ValueError(f"{path}: the header declares {size[0]} x {size[1]} pixels, more than dfr.data.io allows "
                         f"(MAX_IMAGE_PIXELS = {MAX_IMAGE_PIXELS}, MAX_IMAGE_SIDE = {MAX_IMAGE_SIDE}); not decoded")
    # any depth and colour, EXIF orientation applied (IMREAD_UNCHANGED would ignore it)
    try:
        image = cv2.imdecode(raw, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except cv2.error as error:
        raise ValueError(f"{path}: cannot decode the file as an image ({str(error).strip().splitlines()[-1]})") from None
    if image is None:
        raise ValueError(f"{path}: cannot decode the file as an image (truncated, corrupt or not an image)")
    if image.ndim == 3 and raw[:8].tobytes() == PNG_SIGNATURE and raw.size > 25 and raw[25] == PNG_GRAY_ALPHA:
        image = image[..., 0]  # OpenCV gives gray + alpha as three equal colour channels
    if image.ndim == 3 and image.shape[2] >= 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    try:
        return to_float_image(image)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def declared_size(header: bytes) -> tuple[int, int] | None:
    """(width, height) that a PNG, JPEG, BMP or TIFF header declares, or None for other or
    unreadable headers (OpenCV then decides)."""
    if header.startswith(PNG_SIGNATURE) and len(header) >= 24:
        return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    if header.startswith(b"BM") and len(header) >= 26:
        if int.from_bytes(header[14:18], "little") == 12:  # OS/2 header: 16-bit sides
            return int.from_bytes(header[18:20], "little"), int.from_bytes(header[20:22], "little")
        width, height = (int.from_bytes(header[at:at + 4], "little", signed=True) for at in (18, 22))
        return abs(width), abs(height)  # a negative height: rows stored top-down
    if header.startswith(b"\xff\xd8"):
        return _jpeg_size(header)
    if header[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(header)
    return None


def _jpeg_size(header: bytes) -> tuple[int, int] | None:
    """Size from the first start-of-frame marker (SOF0-SOF15 but DHT, JPG and DAC)."""
    at = 2
    while at + 9 <= len(header):
        if header[at] != 0xFF:
            return None
        marker = header[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM and RSTn: no length field
            at += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(header[at + 7:at + 9], "big"), int.from_bytes(header[at + 5:at + 7], "big")
        at += 2 + int.from_bytes(header[at + 2:at + 4], "big")
    return None


def _tiff_size(header: bytes) -> tuple[int, int] | None:
    """Size from the first image directory's ImageWidth (256) and ImageLength (257) tags."""
    order = "little" if header[:2] == b"II" else "big"
    at = int.from_bytes(header[4:8], order)
    if at + 2 > len(header):
        return None
    found = {}
    for entry in range(int.from_bytes(header[at:at + 2], order)):
        start = at + 2 + 12 * entry
        if start + 12 > len(header):
            return None
        tag, kind = int.from_bytes(header[start:start + 2], order), int.from_bytes(header[start + 2:start + 4], order)
        if tag in (256, 257):
            found[tag] = int.from_bytes(header[start + 8:start + (10 if kind == 3 else 12)], order)
    return (found[256], found[257]) if len(found) == 2 else None


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


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The one resize rule of every model: (H, W[, C]) float32 to (height, width[, C]) by area
    interpolation when shrinking (either side), bilinear when enlarging; the same array when the size matches."""
    if image.shape[:2] == (height, width):
        return image
    shrink = image.shape[0] > height or image.shape[1] > width
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return resized.reshape(height, width, *image.shape[2:])


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 1|3) float32 → (H, W) float32; colour by ITU-R BT.601 luma (OpenCV's RGB2GRAY)."""
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
