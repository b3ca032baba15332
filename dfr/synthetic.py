"""Planted-defect texture data from real photos shipped with scikit-image (no download).

Used by ``dfr demo`` and the tests: normal images are random crops of a texture photo
(``brick``, ``grass`` or ``gravel``, 512x512 gray); test images are other crops with a defect
planted in a random elliptical region, whose pixels form the ground-truth mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

TEXTURES = ("brick", "grass", "gravel")
DEFECTS = ("foreign", "dark", "bright", "blur", "scratch")


@dataclass
class DefectDataset:
    """Normal training crops and test crops with ground truth.

    ``train``: list of float32 (S, S) images in [0, 1]; ``test``: list of the same;
    ``masks``: bool (S, S) per test image (all False for good ones); ``defects``: the defect
    kind per test image, ``"good"`` for none.
    """

    train: list[np.ndarray]
    test: list[np.ndarray]
    masks: list[np.ndarray]
    defects: list[str]


def texture(name: str) -> np.ndarray:
    """A 512x512 scikit-image texture photo as float32 in [0, 1]."""
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; choose from {TEXTURES}")
    try:
        from skimage import data
    except ImportError:
        raise ImportError("the texture photos come from scikit-image: pip install 'dfr[demo]'") from None
    return getattr(data, name)().astype(np.float32) / 255.0


def defect_dataset(
    name: str = "brick", *, n_train: int = 24, n_test: int = 12, size: int = 128,
    good_fraction: float = 0.25, seed: int = 0,
) -> DefectDataset:
    """Crops of side ``size`` from texture ``name``; a ``good_fraction`` of test crops stay clean."""
    photo = texture(name)
    other = texture(TEXTURES[(TEXTURES.index(name) + 1) % len(TEXTURES)])
    rng = np.random.default_rng(seed)
    train = [_crop(photo, size, rng) for _ in range(n_train)]
    test, masks, defects = [], [], []
    n_good = round(good_fraction * n_test)
    for index in range(n_test):
        image = _crop(photo, size, rng)
        if index < n_good:
            test.append(image)
            masks.append(np.zeros_like(image, dtype=bool))
            defects.append("good")
            continue
        kind = DEFECTS[(index - n_good) % len(DEFECTS)]
        image, mask = plant_defect(image, kind, rng, foreign=_crop(other, size, rng))
        test.append(image)
        masks.append(mask)
        defects.append(kind)
    return DefectDataset(train, test, masks, defects)


def plant_defect(
    image: np.ndarray, kind: str, rng: np.random.Generator, foreign: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Plant one defect of ``kind`` into a gray image (S, S); returns (new image, bool mask)."""
    size = image.shape[0]
    region = np.zeros(image.shape, np.uint8)
    centre = tuple(int(v) for v in rng.integers(size // 5, 4 * size // 5, 2))
    if kind == "scratch":
        end = tuple(int(v) for v in np.clip(np.array(centre) + rng.integers(-size // 3, size // 3, 2), 0, size - 1))
        cv2.line(region, centre, end, 1, thickness=max(2, size // 40))
    else:
        axes = tuple(int(v) for v in rng.integers(size // 16, size // 7, 2))
        cv2.ellipse(region, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=-1)
    mask = region.astype(bool)
    changed = image.copy()
    if kind == "foreign":
        changed[mask] = foreign[mask]
    elif kind == "dark":
        changed[mask] *= 0.35
    elif kind == "bright":
        changed[mask] = 0.5 + 0.5 * changed[mask]
    elif kind == "blur":
        changed[mask] = cv2.GaussianBlur(image, (0, 0), sigmaX=max(2.0, size / 40))[mask]
    elif kind == "scratch":
        changed[mask] = 0.95
    else:
        raise ValueError(f"unknown defect {kind!r}; choose from {DEFECTS}")
    return np.clip(changed, 0.0, 1.0), mask


def _crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if size > min(photo.shape):
        return cv2.resize(photo, (size, size), interpolation=cv2.INTER_LINEAR)
    y, x = rng.integers(0, photo.shape[0] - size + 1), rng.integers(0, photo.shape[1] - size + 1)
    return photo[y:y + size, x:x + size].copy()
