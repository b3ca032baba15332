"""Large, non-square procedural textures with small planted defects, in the MVTec AD layout.

Made to measure tiled inference: every image, training or test, is a freshly generated
procedural texture (``weave``, ``wood``, ``leather``) of (H, W) px with its own seed, so all
images of a category share the texture's statistics but no test pixel copies a training pixel.
Each defective test image holds one small defect (by default 0.02 %–0.2 % of the image, about
130–1300 px at 640x1024) placed anywhere, borders included; its mask is exactly the pixels the
defect changed (on the stored 8-bit levels).
"""
from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

import cv2
import numpy as np

from dfr.data.files import prepare_folder, to_uint8
from dfr.data.synthetic.defects import (
    DEFECTS,
    PROCEDURAL,
    DefectDataset,
    procedural_texture,
)
from dfr.data.synthetic.mvtec import write_category

MIN_SIZE = 64  # smallest side (px) of a large texture image
MAX_DEFECT_AREA = 0.05  # largest defect, as a fraction of the image
MIN_DEFECT_PIXELS = 16  # smallest defect (px)
EDGE_PROBABILITY = 0.25  # chance that a defect touches an image border
_TRAIN, _TEST = 0, 1


def write_large_textures(
    root: str | os.PathLike,
    categories: tuple[str, ...] | list[str] = ("weave", "wood", "leather"),
    *,
    n_train: int = 20,
    n_test: int = 12,
    size: tuple[int, int] = (640, 1024),
    good_fraction: float = 0.25,
    defect_area: tuple[float, float] = (0.0002, 0.002),
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, DefectDataset]:
    """Write ``root/<texture>/{train,test,ground_truth}`` (8-bit gray PNGs) for each texture in ``categories``.

    ``size``: (height, width) px of every image. A ``good_fraction`` of the test images stays
    clean; each other one holds one defect whose area in px is drawn log-uniformly in
    ``defect_area`` x H x W, its kind cycling through ``DEFECTS`` (see ``large_texture_dataset``).
    Returns, per category, what was written as ``write_mvtec_like`` does: float32 (H, W) images
    exactly as stored (uint8 / 255), bool (H, W) masks and defect names, in ``read_mvtec`` order.
    """
    categories = _check_categories(categories)
    _check(n_train, n_test, size, good_fraction, defect_area, seed)
    root = Path(root)
    written = {}
    for name in categories:
        data = large_texture_dataset(name, n_train=n_train, n_test=n_test, size=size, good_fraction=good_fraction,
                                     defect_area=defect_area, seed=seed)
        written[name] = write_category(prepare_folder(root / name, overwrite), data)
    return written


def large_texture_dataset(
    name: str,
    *,
    n_train: int = 20,
    n_test: int = 12,
    size: tuple[int, int] = (640, 1024),
    good_fraction: float = 0.25,
    defect_area: tuple[float, float] = (0.0002, 0.002),
    seed: int = 0,
) -> DefectDataset:
    """One category of ``write_large_textures`` in memory, test images in generation order.

    Image ``i`` of a split is ``procedural_texture(name, size, s)`` with ``s`` derived from
    ``seed``, the texture's index in ``PROCEDURAL``, the split and ``i`` (so it does not depend on
    ``good_fraction`` or on the other categories), rounded to 8-bit levels: float32 (H, W) in
    [0, 1]. The first ``round(good_fraction * n_test)`` test images are clean; the others get
    defects in the order of ``DEFECTS``, each on one connected region of n px:

    - ``dark``: pixels times 0.35; ``bright``: 0.5 + 0.5 x pixel (blobs);
    - ``blur``: Gaussian blur of sigma max(2, r / 2) px, r the blob's equivalent radius;
    - ``foreign``: the blob filled from a fresh patch of the next procedural texture;
    - ``scratch``: a straight bright line (0.95), 2-3 px wide, at any angle.

    Blobs are ellipses (aspect 1-3, any angle) with a wavy outline. A pixel of the region that
    rounds to its old 8-bit level is moved one level (the defect's way), so the mask is exactly
    the changed pixels and every pixel outside it is the clean texture's.
    """
    if name not in PROCEDURAL:
        raise ValueError(f"unknown category {name!r}; choose from {PROCEDURAL}")
    height, width = _check(n_train, n_test, size, good_fraction, defect_area, seed)
    category = PROCEDURAL.index(name)
    lowest, highest = _pixel_range(defect_area, height, width)

    def clean(split: int, index: int) -> np.ndarray:
        return _quantise(procedural_texture(name, (height, width), _derived(seed, category, split, index, 0)))

    train = [clean(_TRAIN, index) for index in range(n_train)]
    test, masks, defects = [], [], []
    n_good = round(good_fraction * n_test)
    for index in range(n_test):
        image = clean(_TEST, index)
        if index < n_good:
            test.append(image)
            masks.append(np.zeros(image.shape, bool))
            defects.append("good")
            continue
        kind = DEFECTS[(index - n_good) % len(DEFECTS)]
        rng = np.random.default_rng(_derived(seed, category, _TEST, index, 1))
        n_pixels = int(np.clip(round(math.exp(rng.uniform(math.log(lowest), math.log(highest)))), lowest, highest))
        local = _scratch(n_pixels, rng, (height, width)) if kind == "scratch" else _blob(n_pixels, rng, (height, width))
        top, left = _place(local.shape, (height, width), rng)
        box = (slice(top, top + local.shape[0]), slice(left, left + local.shape[1]))
        foreign_seed = _derived(seed, category, _TEST, index, 2)
        image, mask = _apply(image, kind, local, box, PROCEDURAL[(category + 1) % len(PROCEDURAL)], foreign_seed)
        test.append(image)
        masks.append(mask)
        defects.append(kind)
    return DefectDataset(train, test, masks, defects)


def _check_categories(categories: tuple[str, ...] | list[str]) -> list[str]:
    categories = [categories] if isinstance(categories, str) else list(categories)
    if not categories:
        raise ValueError(f"categories is empty; choose from {PROCEDURAL}")
    unknown = [name for name in categories if name not in PROCEDURAL]
    if unknown:
        raise ValueError(f"unknown category {unknown[0]!r}; choose from {PROCEDURAL}")
    if len(set(categories)) != len(categories):
        raise ValueError(f"categories repeat a name: {categories}")
    return categories


def _check(
    n_train: int, n_test: int, size: tuple[int, int], good_fraction: float, defect_area: tuple[float, float], seed: int
) -> tuple[int, int]:
    """Validate the arguments shared by both functions; return (height, width)."""
    for label, value in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be an int >= 1, got {value!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width), got {size!r}") from None
    if not all(isinstance(side, numbers.Integral) and not isinstance(side, bool) for side in (height, width)):
        raise ValueError(f"size must be two ints (height, width), got {size!r}")
    if min(height, width) < MIN_SIZE:
        raise ValueError(f"size {tuple(size)} is too small: each side must be at least {MIN_SIZE} px")
    if not (isinstance(good_fraction, numbers.Real) and 0.0 <= good_fraction <= 1.0):
        raise ValueError(f"good_fraction must lie in [0, 1], got {good_fraction!r}")
    try:
        low, high = (float(value) for value in defect_area)
    except (TypeError, ValueError):
        raise ValueError(f"defect_area must be two fractions (low, high), got {defect_area!r}") from None
    if not 0.0 < low <= high <= MAX_DEFECT_AREA:
        raise ValueError(f"defect_area must satisfy 0 < low <= high <= {MAX_DEFECT_AREA}, got {defect_area!r}")
    _pixel_range((low, high), int(height), int(width))
    return int(height), int(width)


def _pixel_range(defect_area: tuple[float, float], height: int, width: int) -> tuple[int, int]:
    """The whole pixel counts a defect may have; errors where none or too few."""
    pixels = height * width
    lowest, highest = math.ceil(defect_area[0] * pixels - 1e-9), math.floor(defect_area[1] * pixels + 1e-9)
    if lowest < MIN_DEFECT_PIXELS:
        raise ValueError(f"defect_area {tuple(defect_area)} of a {height}x{width} image starts at "
                         f"{defect_area[0] * pixels:.1f} px; defects need at least {MIN_DEFECT_PIXELS} px: "
                         "raise defect_area or size")
    if lowest > highest:
        raise ValueError(f"defect_area {tuple(defect_area)} of a {height}x{width} image holds no whole pixel count "
                         f"({defect_area[0] * pixels:.2f}-{defect_area[1] * pixels:.2f} px): widen it")
    if 2 * math.sqrt(highest / math.pi) + 4 > min(height, width):
        raise ValueError(f"a defect of {highest} px (defect_area {defect_area[1]}) does not fit a "
                         f"{height}x{width} image: lower defect_area")
    return lowest, highest


def _derived(seed: int, category: int, split: int, index: int, part: int) -> int:
    """A seed for one part (texture, defect, foreign patch) of one image, independent of the others."""
    state = np.random.SeedSequence([int(seed), category, split, index, part]).generate_state(1, np.uint64)
    return int(state[0])


def _quantise(image: np.ndarray) -> np.ndarray:
    return to_uint8(image).astype(np.float32) / np.float32(255.0)


def _nearest(distance: np.ndarray, n_pixels: int) -> np.ndarray:
    """bool mask of the ``n_pixels`` smallest distances (ties in raster order), cropped to its bounding box."""
    order = np.argsort(distance, axis=None, kind="stable")[:n_pixels]
    mask = np.zeros(distance.size, bool)
    mask[order] = True
    mask = mask.reshape(distance.shape)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows[0] == 0 or cols[0] == 0 or rows[-1] == mask.shape[0] - 1 or cols[-1] == mask.shape[1] - 1:
        raise RuntimeError("defect shape reached the edge of its canvas")  # a bug: the canvas is too small
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _canvas(reach: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (y, x) from a sub-pixel centre, on a square canvas of half-side ``reach`` + 2 px."""
    half = math.ceil(reach) + 2
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    dy, dx = rng.uniform(0, 1, 2)
    return y - dy, x - dx


def _blob(n_pixels: int, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A wavy ellipse of exactly ``n_pixels`` px, cropped to its box, that fits ``shape``."""
    for attempt in range(20):
        last = attempt == 19  # a disc surely fits (``_pixel_range`` checked)
        aspect = 1.0 if last else math.exp(rng.uniform(0.0, math.log(3.0)))
        angle = rng.uniform(0.0, math.pi)
        waves = np.zeros(3) if last else rng.uniform(0.0, 0.08, 3)  # outline harmonics 2, 3 and 5
        phases = rng.uniform(0.0, 2 * math.pi, 3)
        radius = math.sqrt(n_pixels / math.pi)
        major, minor = radius * math.sqrt(aspect), radius / math.sqrt(aspect)
        y, x = _canvas(major * (1 + waves.sum()) + 2, rng)
        u = (x * math.cos(angle) + y * math.sin(angle)) / major
        v = (-x * math.sin(angle) + y * math.cos(angle)) / minor
        theta = np.arctan2(v, u)
        outline = 1 + sum(w * np.sin(k * theta + p) for w, k, p in zip(waves, (2, 3, 5), phases))
        local = _nearest(np.hypot(u, v) / outline, n_pixels)  # star-shaped about the centre: one piece
        if local.shape[0] <= shape[0] and local.shape[1] <= shape[1]:
            return local
    raise RuntimeError(f"no blob of {n_pixels} px fits {shape}")


def _scratch(n_pixels: int, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A straight line 2-3 px wide of exactly ``n_pixels`` px at a random angle, that fits ``shape``.

    A line too long for the image at every angle tried is made wider (only with large
    ``defect_area`` on small images).
    """
    width = int(rng.integers(2, 4))
    for attempt in range(200):
        if attempt and attempt % 20 == 0:
            width += 1
        length = max(n_pixels / width - 0.8 * width, 1.0)  # a capsule of this length and width holds n px
        angle = rng.uniform(0.0, math.pi)
        along = np.array([math.sin(angle), math.cos(angle)])
        if abs(length * along[0]) + width + 2 > shape[0] or abs(length * along[1]) + width + 2 > shape[1]:
            continue
        y, x = _canvas(length / 2 + width + 2, rng)
        t = np.clip(y * along[0] + x * along[1], -length / 2, length / 2)
        local = _nearest(np.hypot(y - t * along[0], x - t * along[1]), n_pixels)
        if local.shape[0] <= shape[0] and local.shape[1] <= shape[1]:
            return local
    raise RuntimeError(f"no scratch of {n_pixels} px fits {shape}")


def _place(local: tuple[int, int], shape: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of the defect's box: uniform over the image, or touching a border (``EDGE_PROBABILITY``)."""
    top, left = (int(rng.integers(0, side - extent + 1)) for side, extent in zip(shape, local))
    if rng.random() < EDGE_PROBABILITY:
        border = int(rng.integers(4))  # top, bottom, left, right
        if border < 2:
            top = 0 if border == 0 else shape[0] - local[0]
        else:
            left = 0 if border == 2 else shape[1] - local[1]
    return top, left


def _apply(
    image: np.ndarray, kind: str, local: np.ndarray, box: tuple[slice, slice], other: str, foreign_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Change the pixels of ``local`` (placed at ``box``) by ``kind``; return (new image, bool mask)."""
    before = image[box]
    if kind == "dark":
        after = before * 0.35
    elif kind == "bright":
        after = 0.5 + 0.5 * before
    elif kind == "scratch":
        after = np.full_like(before, 0.95)
    elif kind == "foreign":
        patch = procedural_texture(other, (max(local.shape[0], 128), max(local.shape[1], 128)), foreign_seed)
        after = patch[:local.shape[0], :local.shape[1]]
    elif kind == "blur":
        sigma = max(2.0, 0.5 * math.sqrt(local.sum() / math.pi))
        margin = math.ceil(4 * sigma) + 1  # OpenCV's kernel reaches 4 sigma: as if the whole image were blurred
        top, left = max(box[0].start - margin, 0), max(box[1].start - margin, 0)
        window = image[top:box[0].stop + margin, left:box[1].stop + margin]
        blurred = cv2.GaussianBlur(window, (0, 0), sigmaX=sigma)
        after = blurred[box[0].start - top:box[0].stop - top, box[1].start - left:box[1].stop - left]
    else:
        raise ValueError(f"unknown defect {kind!r}; choose from {DEFECTS}")
    old, new = to_uint8(before).astype(np.int16), to_uint8(after).astype(np.int16)
    step = np.where(after >= before, 1, -1)
    step = np.where((old + step < 0) | (old + step > 255), -step, step)
    new = np.where(new == old, old + step, new)  # every pixel of the region changes, at least one level
    changed = image.copy()
    changed[box] = np.where(local, new.astype(np.float32) / np.float32(255.0), before)
    mask = np.zeros(image.shape, bool)
    mask[box] = local
    return changed, mask
