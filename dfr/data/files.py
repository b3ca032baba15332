"""Small file helpers shared by the readers and the generators."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from dfr.data.io import list_images, natural_key


def subfolders(folder: Path) -> list[Path]:
    """Visible folders directly inside ``folder``, naturally sorted."""
    return sorted(
        (path for path in folder.iterdir() if path.is_dir() and not path.name.startswith(".")),
        key=lambda path: natural_key(path.name),
    )


def image_files(folder: Path) -> list[Path]:
    """``dfr.data.io.list_images``, except that an absent or image-free folder gives an empty list."""
    if not folder.is_dir():
        return []
    try:
        return list_images(folder)
    except ValueError:
        return []


def by_stem(paths: list[Path]) -> dict[str, Path]:
    """Map each file's stem to its path; two files with one stem are an error."""
    found: dict[str, Path] = {}
    for path in paths:
        if path.stem in found:
            raise ValueError(f"{path}: same name as {found[path.stem].name} apart from the suffix")
        found[path.stem] = path
    return found


def prepare_folder(folder: Path, overwrite: bool) -> Path:
    """Make ``folder`` an empty folder to write into.

    A non-empty folder is an error unless ``overwrite`` is true, in which case its contents
    are deleted first.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{folder}: folder is not empty; pass overwrite=True to replace its contents")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_image(path: Path, image: np.ndarray) -> None:
    """Write a uint8 image, gray (H, W) or RGB (H, W, 3), in the format its suffix names."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the image")
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded.tofile(path)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] to uint8, rounding to the nearest level."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
