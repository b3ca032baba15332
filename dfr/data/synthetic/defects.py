"""Planted-defect texture data from photos shipped with scikit-image and procedural textures (no download).

Used by ``dfr demo``, the benchmarks and the tests: normal images are random crops of a 512x512
gray texture, either a photo (``brick``, ``grass``, ``gravel``) or one generated from a fixed
seed (``weave``: plain-woven fabric; ``wood``: wavy wood grain; ``leather``: pebbled leather);
``procedural_texture`` makes the procedural ones at any size and seed. Test images are other crops with a defect planted in a random elliptical region (or a scratch),
whose pixels form the ground-truth mask. By default training crops come from the texture's left
half and test crops from its right half, so that no test pixel was seen in training.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

PHOTOS = ("brick", "grass", "gravel")
PROCEDURAL = ("weave", "wood", "leather")
TEXTURES = PHOTOS + PROCEDURAL
SIDE = 512  # side of every texture
PROCEDURAL_SEEDS = {"weave": 1, "wood": 2, "leather": 3}  # the seeds of the 512x512 procedural textures
MIN_SIDE = 16  # smallest side of a procedural texture
DEFECTS = ("foreign", "dark", "bright", "blur", "scratch")


@dataclass
class DefectDataset:
    """Normal training crops and test crops with ground truth.

    ``train``: list of float32 (S, S) images in [0, 1] ((H, W) for
    ``dfr.data.synthetic.large``); ``test``: list of the same;
    ``masks``: bool, same shape, per test image (all False for good ones); ``defects``: the defect
    kind per test image, ``"good"`` for none.
    """

    train: list[np.ndarray]
    test: list[np.ndarray]
    masks: list[np.ndarray]
    defects: list[str]


def texture(name: str) -> np.ndarray:
    """A 512x512 texture (scikit-image photo or procedural) as float32 in [0, 1]."""
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; choose from {TEXTURES}")
    if name in PROCEDURAL:
        return procedural_texture(name)
    try:
        from skimage import data
    except ImportError:
        raise ImportError("the texture photos come from scikit-image: pip install 'dfr[demo]'") from None
    return getattr(data, name)().astype(np.float32) / 255.0


def procedural_texture(name: str, shape: tuple[int, int] = (SIDE, SIDE), seed: int | None = None) -> np.ndarray:
    """A procedural texture (``weave``, ``wood`` or ``leather``) of ``shape`` (H, W) px, float32 in [0, 1].

    ``seed`` (an int >= 0) draws another texture with the same statistics; ``None`` gives the
    texture's own seed, so ``procedural_texture(name)`` is ``texture(name)``. Features keep their
    size in pixels whatever the shape (weave threads 16 px apart, wood rings about 12 px, leather
    grains about 15 px); the noise wraps around, so the texture tiles its own shape.
    """
    if name not in PROCEDURAL:
        raise ValueError(f"unknown procedural texture {name!r}; choose from {PROCEDURAL}")
    shape = tuple(shape)
    if len(shape) != 2 or not all(isinstance(side, (int, np.integer)) and side >= MIN_SIDE for side in shape):
        raise ValueError(f"shape must be (height, width), each an int >= {MIN_SIDE}, got {shape}")
    if seed is not None and not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"seed must be an int >= 0 or None, got {seed!r}")
    shape = (int(shape[0]), int(shape[1]))
    if seed is None and shape == (SIDE, SIDE):
        return {"weave": _weave, "wood": _wood, "leather": _leather}[name]().copy()
    rng = np.random.default_rng(PROCEDURAL_SEEDS[name] if seed is None else int(seed))
    return {"weave": _weave_at, "wood": _wood_at, "leather": _leather_at}[name](shape, rng)


def defect_dataset(
    name: str = "brick", *, n_train: int = 24, n_test: int = 12, size: int = 128,
    good_fraction: float = 0.25, seed: int = 0, disjoint: bool = True,
) -> DefectDataset:
    """Crops of side ``size`` from texture ``name``; a ``good_fraction`` of test crops stay clean.

    ``disjoint``: training crops from the left half of the texture, test crops from the right
    half (``size`` at most ``SIDE / 2``), as test items in real data are new instances. With
    ``False`` both come from the whole texture, so every normal test patch has near-copies in
    the training crops, which favours heads that memorise patches (a nearest-neighbour bank).
    ``foreign`` defects paste in the next texture of the same family (photos or procedural).
    """
    source = texture(name)
    if disjoint and size > SIDE // 2:
        raise ValueError(f"disjoint crops need size <= {SIDE // 2} (half the texture), got {size}; "
                         "pass disjoint=False for larger crops")
    train_source, test_source = (source[:, :SIDE // 2], source[:, SIDE // 2:]) if disjoint else (source, source)
    family = PHOTOS if name in PHOTOS else PROCEDURAL
    other = texture(family[(family.index(name) + 1) % len(family)])
    rng = np.random.default_rng(seed)
    train = [_crop(train_source, size, rng) for _ in range(n_train)]
    test, masks, defects = [], [], []
    n_good = round(good_fraction * n_test)
    for index in range(n_test):
        image = _crop(test_source, size, rng)
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


def _crop(source: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if size > min(source.shape):
        return cv2.resize(source, (size, size), interpolation=cv2.INTER_LINEAR)
    y, x = rng.integers(0, source.shape[0] - size + 1), rng.integers(0, source.shape[1] - size + 1)
    return source[y:y + size, x:x + size].copy()


@functools.lru_cache(maxsize=None)
def _weave() -> np.ndarray:
    """The 512x512 weave of ``texture`` (cached; callers copy)."""
    return _weave_at((SIDE, SIDE), np.random.default_rng(PROCEDURAL_SEEDS["weave"]))


@functools.lru_cache(maxsize=None)
def _wood() -> np.ndarray:
    """The 512x512 wood of ``texture`` (cached; callers copy)."""
    return _wood_at((SIDE, SIDE), np.random.default_rng(PROCEDURAL_SEEDS["wood"]))


@functools.lru_cache(maxsize=None)
def _leather() -> np.ndarray:
    """The 512x512 leather of ``texture`` (cached; callers copy)."""
    return _leather_at((SIDE, SIDE), np.random.default_rng(PROCEDURAL_SEEDS["leather"]))


def _weave_at(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Plain-woven fabric: over-under threads 16 px apart, each with its own width and tone, fibres, wobble."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    u = (x + 2 * _noise(rng, shape, 40)) / 16  # thread coordinates, gently wobbling
    v = (y + 2 * _noise(rng, shape, 40)) / 16
    col, row = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - col, v - row  # position inside the crossing cell
    widths, tones = rng.uniform(0.7, 0.9, (2, 64)), rng.normal(0, 0.08, (2, 64))
    warp_on_top = (col + row) % 2 == 0
    bump_u, bump_v = np.sin(np.pi * fu), np.sin(np.pi * fv)
    # a thread on top rises to 1 mid-cell; one underneath sinks to 0.3 below the crossing thread
    warp = _thread(fu, widths[0, col % 64]) * np.where(warp_on_top, 0.6 + 0.4 * bump_v, 0.6 - 0.3 * bump_v)
    weft = _thread(fv, widths[1, row % 64]) * np.where(warp_on_top, 0.6 - 0.3 * bump_u, 0.6 + 0.4 * bump_u)
    warp_fibres = 0.12 * _noise(rng, shape, 6, 0.7) + tones[0, col % 64]  # fibres run along each thread
    weft_fibres = 0.12 * _noise(rng, shape, 0.7, 6) + tones[1, row % 64]
    fibres = np.where(warp >= weft, warp_fibres, weft_fibres)
    height = np.maximum(warp, weft)
    return _normalise(height + fibres * (height > 0.05) + 0.05 * _noise(rng, shape, 1) + 0.03 * _noise(rng, shape, 60))


def _thread(offset: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Height across a thread centred in its cell: a half ellipse ``width`` (of the cell) wide."""
    return np.sqrt(np.clip(1 - (2 * (offset - 0.5) / width) ** 2, 0, 1))


def _wood_at(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Wood grain: horizontal rings about 12 px apart, warped and unevenly spaced, with pores and streaks."""
    y = np.arange(shape[0])[:, None]
    phase = ((y + 10 * _noise(rng, shape, 40, 100) + 3 * _noise(rng, shape, 12, 50)) / 12
             + 0.2 * _noise(rng, shape, 30, 120))
    t = phase - np.floor(phase)  # position across a ring
    latewood = 0.3 * t + np.exp(-((1 - t) / 0.25) ** 2) + np.exp(-(t / 0.06) ** 2)  # dark band, sharp edge
    latewood *= 1 + 0.4 * _noise(rng, shape, 6, 60)
    pores = np.minimum(_noise(rng, shape, 0.6, 5), 0)  # short dark dashes along the grain
    return _normalise(-0.5 * latewood + 0.12 * pores + 0.08 * _noise(rng, shape, 1.2, 25)
                      + 0.05 * _noise(rng, shape, 40, 120))


def _leather_at(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Pebbled leather: rounded grains about 15 px wide between creases, lit from one side, with fine noise."""
    height = np.sqrt(np.abs(_noise(rng, shape, 6) + 0.3 * _noise(rng, shape, 2)))  # sinks into creases along the zero lines
    light = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) + cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3)
    return _normalise(height + 0.6 * light + 0.2 * _noise(rng, shape, 0.7) + 0.1 * _noise(rng, shape, 40))


def _noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma_y: float, sigma_x: float | None = None
) -> np.ndarray:
    """White noise of ``shape`` (H, W) blurred by a Gaussian of ``sigma_y`` x ``sigma_x`` px (wrapping), unit std."""
    sigma_x = sigma_y if sigma_x is None else sigma_x
    fy, fx = np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :]
    gain = np.exp(-2 * np.pi ** 2 * ((sigma_y * fy) ** 2 + (sigma_x * fx) ** 2))
    smooth = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * gain, s=shape)
    return ((smooth - smooth.mean()) / smooth.std()).astype(np.float32)


def _normalise(image: np.ndarray) -> np.ndarray:
    """Mean 0.5 and std 0.16, clipped to [0, 1], float32."""
    return np.clip(0.5 + 0.16 * (image - image.mean()) / image.std(), 0, 1).astype(np.float32)
