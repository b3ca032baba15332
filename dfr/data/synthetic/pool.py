"""Pool-style images: water with caustics, lane ropes, glare, splashes; swimmers as the anomalies.

A fixed camera looks at a pool (a trapezoid in perspective, jittered by a pixel or two per
image) surrounded by deck. Inside the pool, all of them normal: blue water with bright caustic
lines, lane ropes of red and white floats that sway a little, patches of glare and white
splashes of churned water. Outside it, on the deck, spectators come and go (they lie outside
the pool mask). Swimmers (a dark body, a coloured cap and the white wake of their kicks) lie
in the lanes, of several sizes and partly submerged: parts of the body are hidden or only
faintly visible through the water. A swimmer's box is the bounding box of its visible pixels.
Written as RGB PNGs with annotations in YOLO, Pascal VOC and/or COCO form and a pool-region
mask per image, in the layout ``dfr.data.readers.pool`` reads.

``write_pool_like`` films that one fixed camera (its output is kept bit for bit: benchmark
figures depend on it). ``write_pool_cameras`` films several simulated cameras, each a seeded
draw of pool placement, perspective, lanes, water colour, lighting and surroundings, at the
real footage's 1600x900 or any other size; the frames of the last cameras, all with swimmers,
are the test set, so that a model is tested on cameras it never saw in training.
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dfr.data.files import prepare_folder, write_image
from dfr.data.readers.pool import FORMATS

LANES = 6
_CAPS = ((220, 30, 30), (240, 210, 20), (245, 245, 245), (30, 30, 30), (30, 60, 200))


@dataclass
class SyntheticPool:
    """What ``write_pool_like`` wrote: uint8 RGB images (H, W, 3), int (k, 4) swimmer boxes
    ``x0, y0, x1, y1`` (x1/y1 exclusive) and bool (H, W) pool masks, per image in name order."""

    root: Path
    images: list[np.ndarray]
    boxes: list[np.ndarray]
    region_masks: list[np.ndarray]


@dataclass
class SyntheticPoolCameras(SyntheticPool):
    """What ``write_pool_cameras`` wrote: a :class:`SyntheticPool` (per image in name order,
    which is camera order) plus the file name and the camera of each image.

    ``names``: image file names (``cam<c>_<i>.png``); ``image_cameras``: camera index of each
    image; ``test_cameras``: the cameras held out for testing (the last ones, whose frames all
    hold swimmers; the other cameras' frames hold none).
    """

    names: list[str]
    image_cameras: list[int]
    test_cameras: list[int]

    @property
    def train_indices(self) -> list[int]:
        """Indices of the images of the training cameras (no swimmer in any of them)."""
        return [index for index, camera in enumerate(self.image_cameras) if camera not in self.test_cameras]

    @property
    def test_indices(self) -> list[int]:
        """Indices of the images of the test cameras (1 or more swimmers in each)."""
        return [index for index, camera in enumerate(self.image_cameras) if camera in self.test_cameras]


def write_pool_like(
    root: str | os.PathLike,
    *,
    n_images: int = 16,
    size: tuple[int, int] = (180, 320),
    empty_fraction: float = 0.4,
    max_swimmers: int = 4,
    formats: tuple[str, ...] | list[str] = FORMATS,
    seed: int = 0,
    overwrite: bool = False,
) -> SyntheticPool:
    """Write ``n_images`` pool images of ``size`` (H, W) under ``root``.

    A seeded ``empty_fraction`` of the images has no swimmer; the others have 1 to
    ``max_swimmers`` (at most one per lane). ``formats`` picks the annotation formats written.
    """
    _check_formats(formats)
    if not 1 <= max_swimmers <= LANES:
        raise ValueError(f"max_swimmers must lie in 1..{LANES}, got {max_swimmers}")
    height, width = size
    if height < 90 or width < 160:
        raise ValueError(f"size must be at least (90, 160), got {size}")
    folder = prepare_folder(Path(root), overwrite)
    rng = np.random.default_rng(seed)
    deck = _deck(height, width, rng)
    empty = set(rng.permutation(n_images)[: round(empty_fraction * n_images)].tolist())
    images, boxes, regions = [], [], []
    for index in range(n_images):
        count = 0 if index in empty else int(rng.integers(1, max_swimmers + 1))
        image, image_boxes, region = _scene(deck, count, rng)
        _write_frame(folder, f"pool_{index:03d}", image, image_boxes, region, formats)
        images.append(image)
        boxes.append(image_boxes)
        regions.append(region)
    if "coco" in formats:
        _write_coco(folder / "annotations.json", boxes, (height, width))
    return SyntheticPool(folder, images, boxes, regions)


def write_pool_cameras(
    root: str | os.PathLike,
    *,
    cameras: int = 6,
    test_cameras: int = 2,
    images_per_camera: int = 10,
    size: tuple[int, int] = (900, 1600),
    max_swimmers: int = 4,
    formats: tuple[str, ...] | list[str] = ("coco",),
    seed: int = 0,
    overwrite: bool = False,
) -> SyntheticPoolCameras:
    """Write pool footage of ``cameras`` simulated fixed cameras under ``root``; the last
    ``test_cameras`` of them are never seen in training.

    Each camera is a seeded draw of where the pool lies in the frame and how large it is, its
    perspective (a trapezoid whose far edge is 45 to 85 % as wide as the near one, rotated by
    up to 5 degrees; the lanes run across the frame or away from the camera), the water colour
    (deep blue to turquoise and green-ish), the floor's lane lines, the number of lanes (4 to
    8), the lighting (overall brightness, a linear gradient, caustics and glare) and the
    surroundings (deck colour and tiling, coping, a wall, stands with a seated crowd or an
    outdoor hedge and sky). Between two frames of one camera only small things change: a
    camera shake of up to 2 px, caustics, glare, rope sway, splashes and people walking on the
    deck. Everything but the water lies outside the pool mask.

    The frames of the training cameras (``0 .. cameras - test_cameras - 1``) hold no swimmer;
    each frame of a test camera holds 1 to ``max_swimmers`` (at most one per lane), so
    :func:`dfr.data.readers.split_indices` with ``"object_free"`` trains on exactly the
    training cameras' frames and tests on the unseen cameras' frames. A swimmer (body, arms,
    coloured cap and a white wake, partly submerged) lies inside the pool mask; the longer side
    of its box (the bounding box of its visible pixels) is 20 to 60 px at 1600 px image width,
    in proportion to the width at other sizes.

    Written, in the layout ``dfr.data.readers.pool`` reads: ``images/<stem>.png`` (uint8 RGB,
    ``size`` = (H, W) pixels), ``masks/<stem>.png`` (pool region, 255 inside), the annotations
    in ``formats`` (YOLO ``labels/``, VOC ``annotations/``, COCO ``annotations.json``) and
    ``meta/cameras.json`` (per camera: index, whether it is a test camera, its image stems,
    lanes and lane direction; outside the folders the reader searches). Stems are
    ``cam<c>_<i>`` with zero-padded numbers, so that name order is camera order. The same
    ``seed`` gives the same files; camera ``c`` looks the same whatever ``cameras`` is.
    """
    _check_formats(formats)
    for name, value in (("cameras", cameras), ("images_per_camera", images_per_camera)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if cameras < 2:
        raise ValueError(f"cameras must be at least 2 (one to train on, one to test on), got {cameras}")
    if not isinstance(test_cameras, (int, np.integer)) or not 1 <= test_cameras <= cameras - 1:
        raise ValueError(f"test_cameras must lie in 1..{cameras - 1} (cameras - 1), got {test_cameras!r}")
    if images_per_camera < 1:
        raise ValueError(f"images_per_camera must be at least 1, got {images_per_camera}")
    if not 1 <= max_swimmers <= CAMERA_LANES[1]:
        raise ValueError(
            f"max_swimmers must lie in 1..{CAMERA_LANES[1]} (the most lanes a camera has; at most one "
            f"swimmer per lane), got {max_swimmers}"
        )
    height, width = (int(value) for value in size)
    if height < 90 or width < 160:
        raise ValueError(f"size must be at least (90, 160), got {tuple(size)}")
    folder = prepare_folder(Path(root), overwrite)
    camera_digits, image_digits = len(str(cameras - 1)), max(3, len(str(images_per_camera - 1)))
    first_test = cameras - test_cameras
    images, boxes, regions, names, image_cameras, listing = [], [], [], [], [], []
    for camera_index, camera_seed in enumerate(np.random.SeedSequence(seed).spawn(cameras)):
        look_seed, frame_seed = camera_seed.spawn(2)
        camera = _draw_camera((height, width), max_swimmers, np.random.default_rng(look_seed))
        rng = np.random.default_rng(frame_seed)
        is_test = camera_index >= first_test
        stems = []
        for frame in range(images_per_camera):
            count = int(rng.integers(1, max_swimmers + 1)) if is_test else 0
            image, image_boxes, region = _camera_frame(camera, count, rng)
            stem = f"cam{camera_index:0{camera_digits}d}_{frame:0{image_digits}d}"
            _write_frame(folder, stem, image, image_boxes, region, formats)
            images.append(image)
            boxes.append(image_boxes)
            regions.append(region)
            names.append(f"{stem}.png")
            image_cameras.append(camera_index)
            stems.append(stem)
        listing.append({"index": camera_index, "test": is_test, "lanes": camera.lanes,
                        "lanes_run": "away" if camera.along_depth else "across", "images": stems})
    if "coco" in formats:
        _write_coco(folder / "annotations.json", boxes, (height, width), names)
    (folder / "meta").mkdir()
    (folder / "meta" / "cameras.json").write_text(json.dumps(
        {"size": [height, width], "seed": seed, "test_cameras": list(range(first_test, cameras)), "cameras": listing},
        indent=1,
    ))
    return SyntheticPoolCameras(folder, images, boxes, regions, names, image_cameras, list(range(first_test, cameras)))


def _noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise, float32 with unit standard deviation."""
    field = cv2.GaussianBlur(rng.normal(0.0, 1.0, shape).astype(np.float32), (0, 0), sigma)
    return field / (field.std() + 1e-6)


def _deck(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Concrete deck around the pool, float32 RGB (H, W, 3) in 0..255."""
    shade = 1.0 + 0.05 * _noise((height, width), 2.0, rng)
    return np.array([200.0, 190.0, 170.0], np.float32) * shade[:, :, None]


def _corners(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Pool trapezoid corners (4, 2) as x, y: narrower at the far (top) edge."""
    corners = np.array([[0.14, 0.18], [0.86, 0.18], [0.98, 0.96], [0.02, 0.96]]) * [width, height]
    return np.round(corners + rng.integers(-2, 3, (4, 2))).astype(np.int32)


def _edges_at(corners: np.ndarray, y: float) -> tuple[float, float]:
    """Left and right pool edge x at height ``y``."""
    (tlx, tly), (trx, _), (brx, bry), (blx, _) = corners.astype(float)
    t = (y - tly) / (bry - tly)
    return tlx + t * (blx - tlx), trx + t * (brx - trx)


def _scene(deck: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image (uint8 RGB), its swimmer boxes (int (count, 4)) and its pool mask (bool)."""
    height, width = deck.shape[:2]
    corners = _corners(height, width, rng)
    region = np.zeros((height, width), np.uint8)
    cv2.fillPoly(region, [corners], 1)
    pool = region.astype(bool)
    top, bottom = corners[:, 1].min(), corners[:, 1].max()
    depth = np.clip((np.arange(height) - top) / (bottom - top), 0.0, 1.0)[:, None]
    caustics = np.exp(-(_noise((height, width), 3.0, rng) / 0.25) ** 2)
    water = np.array([30.0, 115.0, 180.0]) * (1.15 - 0.3 * depth[:, :, None]) + 50.0 * caustics[:, :, None]
    image = np.where(pool[:, :, None], water, deck)
    for _ in range(int(rng.integers(2, 5))):
        glare = np.zeros((height, width), np.float32)
        centre = (int(rng.integers(0, width)), int(rng.integers(top, bottom)))
        axes = (int(rng.integers(width // 16, width // 6)), int(rng.integers(2, height // 25 + 3)))
        cv2.ellipse(glare, centre, axes, float(rng.uniform(-10, 10)), 0, 360, 1.0, thickness=-1)
        glare = cv2.GaussianBlur(glare, (0, 0), 2.0) * rng.uniform(0.25, 0.5) * pool
        image = image * (1 - glare[:, :, None]) + 255.0 * glare[:, :, None]
    for _ in range(int(rng.integers(1, 4))):
        _splash(image, pool, int(rng.integers(0, width)), int(rng.integers(top, bottom)), rng.uniform(2.0, 5.0), rng)
    rope_ys = [top + (bottom - top) * k / LANES for k in range(1, LANES)]
    for k, y in enumerate(rope_ys):
        left, right = _edges_at(corners, y)
        thickness = 1 + round(2 * (y - top) / (bottom - top))
        sway, phase = rng.uniform(0.0, 1.5), rng.uniform(0, 2 * np.pi)
        for n, x in enumerate(np.arange(left, right, 6.0)):
            colour = (210, 40, 40) if (n + k) % 2 else (235, 235, 235)
            rope_y = int(round(y + sway * np.sin(phase + x / 25.0)))
            cv2.line(image, (int(x), rope_y), (int(min(x + 4, right)), rope_y), colour, thickness)
    image = image * pool[:, :, None] + _with_spectators(deck, pool, rng) * ~pool[:, :, None]
    boxes = []
    lane_edges = [top] + rope_ys + [bottom]
    for lane in sorted(rng.choice(LANES, size=count, replace=False).tolist()):
        pixels = _swimmer(image, pool, lane_edges[lane], lane_edges[lane + 1], corners, rng)
        ys, xs = np.nonzero(pixels)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return (
        np.clip(np.round(image), 0, 255).astype(np.uint8),
        np.array(boxes, dtype=np.int64).reshape(-1, 4),
        pool,
    )


def _swimmer(image: np.ndarray, pool: np.ndarray, lane_top: float, lane_bottom: float, corners: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Paint one swimmer into ``image`` (in place) inside the lane and the pool; returns its bool pixels."""
    height, width = image.shape[:2]
    y = (lane_top + lane_bottom) / 2 + rng.uniform(-0.15, 0.15) * (lane_bottom - lane_top)
    scale = (0.6 + 0.6 * (y - corners[:, 1].min()) / np.ptp(corners[:, 1])) * rng.uniform(0.7, 1.4)
    left, right = _edges_at(corners, y)
    length, girth = 22 * scale, 5 * scale
    x = rng.uniform(left + length, right - length)
    heading = rng.choice([-1.0, 1.0])
    parts = np.zeros((3, height, width), np.uint8)
    cv2.ellipse(parts[0], (int(x), int(y)), (int(length / 2), max(2, int(girth / 2))), 0, 0, 360, 1, thickness=-1)
    cv2.circle(parts[1], (int(x + heading * length / 2), int(y)), max(2, int(3 * scale)), 1, thickness=-1)
    for _ in range(int(rng.integers(2, 5))):
        spot = (int(x - heading * rng.uniform(0.3, 0.7) * length), int(y + rng.uniform(-1.5, 1.5) * girth))
        cv2.circle(parts[2], spot, max(1, int(rng.uniform(1.5, 3.0) * scale)), 1, thickness=-1)
    colours = [(95, 65, 55), _CAPS[int(rng.integers(len(_CAPS)))], (250, 250, 250)]
    parts = parts.astype(bool) & pool
    # Partly submerged: under a random stretch of the body the water hides it; elsewhere it
    # shows through the water with an opacity between 0.45 and 1.
    submerged = np.zeros((height, width), bool)
    if rng.random() < 0.6:
        cut = x + rng.uniform(-0.4, 0.4) * length
        columns = np.arange(width)[None, :]
        submerged[:] = columns > cut if rng.random() < 0.5 else columns < cut
        submerged &= ~parts[1]  # the cap stays above the water
    opacity = rng.uniform(0.45, 1.0)
    for index, (part, colour) in enumerate(zip(parts, colours)):
        visible = part & ~submerged
        alpha = 1.0 if index else opacity
        image[visible] = alpha * np.array(colour, np.float64) + (1 - alpha) * image[visible]
    return (parts & ~submerged).any(axis=0)


def _splash(image: np.ndarray, pool: np.ndarray, x: int, y: int, radius: float, rng: np.random.Generator) -> None:
    """Paint white churned water: a cluster of small soft bubbles around (x, y), in the pool only."""
    height, width = image.shape[:2]
    foam = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(4, 9))):
        centre = (int(x + rng.normal(0, radius)), int(y + rng.normal(0, radius / 2)))
        cv2.circle(foam, centre, max(1, int(rng.uniform(0.5, 1.2) * radius / 2)), 1.0, thickness=-1)
    foam = cv2.GaussianBlur(foam, (0, 0), 1.0) * rng.uniform(0.5, 0.9) * pool
    image[:] = image * (1 - foam[:, :, None]) + 250.0 * foam[:, :, None]


def _with_spectators(deck: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The deck with 0 to 5 spectators (a coloured body and a head) standing outside the pool."""
    picture = deck.copy()
    height, width = pool.shape
    outside = np.argwhere(~pool)
    for _ in range(int(rng.integers(0, 6))):
        y, x = outside[rng.integers(len(outside))]
        size = rng.uniform(4.0, 8.0) * height / 180
        body = tuple(float(c) for c in rng.uniform(20, 235, 3))
        cv2.ellipse(picture, (int(x), int(y)), (max(2, int(size / 2)), max(3, int(size))), 0, 0, 360, body, thickness=-1)
        cv2.circle(picture, (int(x), int(y - 1.4 * size)), max(2, int(size / 2.5)), (200, 160, 130), thickness=-1)
    return picture


# --- Several simulated cameras (write_pool_cameras) -------------------------------------------
#
# A camera is drawn once: the pool's corners in the frame, a homography from a flat "texture"
# of the pool (x along the lanes, y across them; px per metre as at the near edge) into the
# frame, the water (colour, floor lane lines, far-side sheen) and the surroundings rendered
# once on a canvas _PAD px larger on each side, and the lighting. A frame is a crop of that
# canvas shifted by the camera shake, with new caustics, rope sway, glare, splashes,
# spectators and swimmers drawn on it. Everything drawn per frame is drawn in small windows
# so that full-HD frames stay fast.

#: Fewest and most lanes of a simulated camera.
CAMERA_LANES = (4, 8)
#: Longer side of a swimmer's box in px at 1600 px image width (in proportion to the width).
SWIMMER_LENGTH = (20.0, 60.0)
_PAD = 2
_SHAKE, _SHAKE_P = np.array([-2, -1, 0, 1, 2]), np.array([0.05, 0.2, 0.5, 0.2, 0.05])
_WATER = np.array([[20, 75, 160], [30, 115, 185], [35, 150, 190], [45, 170, 165], [75, 165, 125]], np.float32)
_DECKS = ((200, 190, 170), (185, 185, 180), (180, 115, 90), (218, 218, 212), (150, 170, 185), (125, 125, 120))
_WALLS = ((205, 205, 198), (170, 190, 205), (212, 182, 150), (120, 140, 160), (190, 80, 60), (90, 95, 105))
_ROPES = (((210, 40, 40), (235, 235, 235)), ((30, 70, 200), (235, 235, 235)), ((240, 200, 30), (30, 70, 200)),
          ((30, 150, 60), (235, 235, 235)), ((225, 120, 30), (235, 235, 235)))
_SEATS = ((60, 90, 150), (150, 45, 45), (70, 70, 78), (200, 200, 195), (40, 110, 70), (190, 160, 60))
_BODIES = ((95, 65, 55), (40, 35, 45), (175, 125, 100), (120, 85, 70), (25, 40, 90))


@dataclass
class _Camera:
    """One simulated fixed camera: what every frame of it shares (canvas = frame + _PAD each side)."""

    shape: tuple[int, int]  # frame (H, W)
    scale: float  # W / 1600
    lanes: int
    along_depth: bool  # lanes run away from the camera (else across the frame)
    homography: np.ndarray  # float64 (3, 3): texture (x, y) -> canvas (x, y)
    texture_shape: tuple[int, int]  # (rows across the lanes, columns along them)
    metre: float  # texture px per metre
    scale_ref: float  # canvas px per texture px at the pool's centre
    region: np.ndarray  # bool (H + 2 _PAD, W + 2 _PAD)
    water: np.ndarray  # float32 (H + 2 _PAD, W + 2 _PAD, 3)
    surroundings: np.ndarray  # float32 (H + 2 _PAD, W + 2 _PAD, 3)
    light: np.ndarray  # float32 (H + 2 _PAD, W + 2 _PAD), multiplies the frame
    caustics: tuple[float, float, float]  # strength (grey levels), line width (noise sd), noise sigma (texture px)
    glare: list[tuple[float, float, float, float, float, float]]  # x, y (canvas), axes (px), angle (deg), alpha
    ropes: tuple[tuple[int, int, int], tuple[int, int, int]]
    spots: np.ndarray  # int (k, 3) canvas x, y where a spectator may stand (feet), px to the pool from there


def _check_formats(formats: tuple[str, ...] | list[str]) -> None:
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {tuple(formats)}")


def _smooth_noise(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> np.ndarray:
    """float32 noise of unit sd varying over about ``cell`` px, made small and enlarged (fast for large cells)."""
    height, width = shape
    small = (max(2, int(np.ceil(height / cell)) + 2), max(2, int(np.ceil(width / cell)) + 2))
    field = cv2.GaussianBlur(rng.normal(0.0, 1.0, small).astype(np.float32), (0, 0), 0.8)
    field = cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC)
    return field / (field.std() + 1e-6)


def _map(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (n, 2) through a homography, float64 (n, 2)."""
    return cv2.perspectiveTransform(np.asarray(points, np.float64).reshape(-1, 1, 2), homography).reshape(-1, 2)


def _local(homography: np.ndarray, x: float, y: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Image point of texture point (x, y), unit image direction of the texture's x axis there,
    and the linear scale (image px per texture px, square root of the Jacobian's determinant)."""
    delta = 1.0
    point, along, across = _map(homography, [[x, y], [x + delta, y], [x, y + delta]])
    du, dv = along - point, across - point
    return point, du / (np.hypot(*du) + 1e-12), float(np.sqrt(abs(du[0] * dv[1] - du[1] * dv[0])) / delta)


def _window(x: float, y: float, half: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Window x0, y0, x1, y1 (exclusive) of ``half`` px around (x, y), clipped to an image of ``shape``."""
    x, y = round(x), round(y)
    return max(0, x - half), max(0, y - half), min(shape[1], x + half + 1), min(shape[0], y + half + 1)


def _draw_camera(size: tuple[int, int], min_lanes: int, rng: np.random.Generator) -> _Camera:
    """Draw one camera for frames of ``size`` (H, W) with at least ``min_lanes`` lanes."""
    height, width = size
    scale = width / 1600.0
    canvas = (height + 2 * _PAD, width + 2 * _PAD)
    lanes = int(rng.integers(max(CAMERA_LANES[0], min_lanes), CAMERA_LANES[1] + 1))
    along_depth = bool(rng.random() < 0.4)
    # The pool: a trapezoid (far edge on top, narrower), shifted, skewed and slightly rotated.
    far_y, near_y = rng.uniform(0.16, 0.4) * height, rng.uniform(0.8, 0.95) * height
    near_w = rng.uniform(0.62, 0.95) * width
    far_w = near_w * rng.uniform(0.45, 0.85)
    centre_x = width / 2 + rng.uniform(-1, 1) * (0.49 * width - near_w / 2)
    skew = rng.uniform(-0.12, 0.12) * width
    quad = np.array([[centre_x + skew - far_w / 2, far_y], [centre_x + skew + far_w / 2, far_y],
                     [centre_x + near_w / 2, near_y], [centre_x - near_w / 2, near_y]])
    angle = np.deg2rad(rng.uniform(-5.0, 5.0))
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    middle = quad.mean(axis=0)
    quad = (quad - middle) @ rotation.T + middle + _PAD
    far_left, far_right, near_right, near_left = quad
    # The texture: x along the lanes (a 25 or 50 m pool), y across them (2.5 m a lane).
    length_m = 25.0 if along_depth or rng.random() < 0.6 else 50.0
    width_m = 2.5 * lanes
    near_m = width_m if along_depth else length_m
    metre = min(np.hypot(*(near_right - near_left)) / near_m, 2.0 * max(size) / max(length_m, width_m))
    rows, columns = max(8, round(metre * width_m)), max(8, round(metre * length_m))
    if along_depth:  # texture corners (0, 0), (columns, 0), (columns, rows), (0, rows) go to ...
        corners = [near_left, far_left, far_right, near_right]
    else:
        corners = [far_left, far_right, near_right, near_left]
    source = np.array([[0, 0], [columns, 0], [columns, rows], [0, rows]], np.float32)
    homography = cv2.getPerspectiveTransform(source, np.array(corners, np.float32))
    scale_ref = _local(homography, columns / 2, rows / 2)[2]
    region = np.zeros(canvas, np.uint8)
    cv2.fillPoly(region, [np.round(quad).astype(np.int32)], 1)
    region = region.astype(bool)
    # Water: colour, a slightly uneven floor, dark lane lines with T ends, a sheen far off.
    t = rng.uniform(0, len(_WATER) - 1)
    low = int(min(t, len(_WATER) - 2))
    colour = (_WATER[low] * (1 - (t - low)) + _WATER[low + 1] * (t - low)) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    texture = np.empty((rows, columns, 3), np.float32)
    texture[:] = colour
    texture *= (1.0 + 0.05 * _smooth_noise((rows, columns), 1.5 * metre, rng))[:, :, None]
    lines = np.zeros((rows, columns), np.float32)
    lane_w, half_line, end = rows / lanes, max(1, round(0.125 * metre)), round(2.0 * metre)
    for lane in range(lanes):
        y = round((lane + 0.5) * lane_w)
        cv2.rectangle(lines, (end, y - half_line), (columns - end, y + half_line), 1.0, thickness=-1)
        for x in (end, columns - end):
            bar = round(0.5 * metre)
            cv2.rectangle(lines, (x - half_line, y - bar), (x + half_line, y + bar), 1.0, thickness=-1)
    lines = cv2.GaussianBlur(lines, (0, 0), max(0.5, 0.04 * metre))[:, :, None] * rng.uniform(0.25, 0.6)
    texture = texture * (1 - lines) + np.array([15, 30, 70], np.float32) * lines
    water = cv2.warpPerspective(texture, homography, canvas[::-1], flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    top, bottom = quad[:, 1].min(), quad[:, 1].max()
    far = (1 - np.clip((np.arange(canvas[0], dtype=np.float32) - top) / (bottom - top), 0, 1))[:, None, None]
    sheen = rng.uniform(0.05, 0.35) * far
    water = water * (1 - sheen) + np.array([215, 225, 232], np.float32) * sheen
    surroundings = _surroundings(canvas, quad, homography, metre, scale, rng)
    band = surroundings[1]
    surroundings = surroundings[0]
    # Lighting: brightness times a linear gradient in a random direction.
    theta = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0 : canvas[0], 0 : canvas[1]].astype(np.float32)
    ramp = xs * np.cos(theta) + ys * np.sin(theta)
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    light = (rng.uniform(0.72, 1.12) * (1.0 + rng.uniform(0.0, 0.4) * (ramp - 0.5))).astype(np.float32)
    caustics = (rng.uniform(15.0, 50.0), rng.uniform(0.2, 0.32), 0.1 * metre * rng.uniform(0.8, 1.4))
    # Glare: fixed reflections of lights, elongated roughly along the frame's rows.
    amount = rng.uniform(0.1, 0.7)
    glare = []
    for _ in range(int(rng.integers(0, 6))):
        point, _, local = _local(homography, rng.uniform(0.05, 0.95) * columns, rng.uniform(0.05, 0.95) * rows)
        major = rng.uniform(0.02, 0.08) * width * local / scale_ref
        glare.append((point[0], point[1], major, major * rng.uniform(0.08, 0.3),
                      np.rad2deg(angle) + rng.uniform(-8, 8), amount * rng.uniform(0.5, 1.0)))
    # Where spectators may stand: on the deck, clear of the pool and inside the frame.
    clearance = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)
    free = (clearance > 0.07 * height) & ~band
    free[: int(0.15 * height)] = False
    free[:, : int(0.02 * width)] = False
    free[:, canvas[1] - int(0.02 * width) :] = False
    spots = np.argwhere(free)[:, ::-1]
    spots = np.column_stack([spots, clearance[spots[:, 1], spots[:, 0]].astype(int)])
    if len(spots) > 2000:
        spots = spots[np.sort(rng.choice(len(spots), 2000, replace=False))]
    return _Camera(
        shape=(height, width), scale=scale, lanes=lanes, along_depth=along_depth, homography=homography,
        texture_shape=(rows, columns), metre=metre, scale_ref=scale_ref, region=region,
        water=np.ascontiguousarray(water, np.float32), surroundings=surroundings, light=light,
        caustics=caustics, glare=glare, ropes=_ROPES[int(rng.integers(len(_ROPES)))], spots=spots,
    )


def _surroundings(canvas: tuple[int, int], quad: np.ndarray, homography: np.ndarray, metre: float, scale: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Deck (tiled or plain), coping around the pool and, beyond its far edge, a wall, stands
    with a seated crowd or a hedge under the sky: float32 RGB canvas and the bool far band."""
    height, width = canvas
    deck_colour = np.array(_DECKS[int(rng.integers(len(_DECKS)))], np.float32)
    deck_colour = deck_colour * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    shade = 1.0 + 0.035 * _smooth_noise(canvas, 60 * scale + 2, rng) + 0.025 * _smooth_noise(canvas, 2.0, rng)
    deck = deck_colour * shade[:, :, None]
    if rng.random() < 0.6:  # tiles in perspective: the deck lies in the water's plane
        inverse = np.linalg.inv(homography)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
        w = inverse[2, 0] * xs + inverse[2, 1] * ys + inverse[2, 2]
        sign = np.sign(inverse[2] @ [*quad.mean(axis=0), 1.0])
        valid = w * sign > 1e-9
        w = np.where(valid, w, sign)
        local = np.sqrt(abs(np.linalg.det(homography)) * np.abs(w) ** 3)  # image px per texture px
        tile = rng.uniform(0.3, 1.0) * metre
        line = np.zeros(canvas, np.float64)
        for row in (0, 1):
            coordinate = (inverse[row, 0] * xs + inverse[row, 1] * ys + inverse[row, 2]) / w / tile
            distance = np.abs(coordinate - np.round(coordinate)) * tile * local
            line = np.maximum(line, np.exp(-((distance / (0.9 + scale)) ** 2)))
        fade = np.clip((tile * local - 5.0) / 10.0, 0.0, 1.0) * valid
        deck *= (1.0 - rng.uniform(0.12, 0.3) * line * fade).astype(np.float32)[:, :, None]
    coping = tuple(float(c) for c in rng.choice([[235, 235, 230], [205, 205, 200], [160, 190, 210], [225, 215, 195]]))
    cv2.polylines(deck, [np.round(quad).astype(np.int32)], True, coping,
                  thickness=max(2, round(rng.uniform(0.006, 0.014) * width)), lineType=cv2.LINE_AA)
    # The far band: above a line parallel to the pool's far edge.
    (x0, y0), (x1, y1) = quad[0], quad[1]
    slope = (y1 - y0) / (x1 - x0)
    gap = rng.uniform(0.015, 0.07) * height
    left, right = y0 - gap - slope * x0, y0 - gap + slope * (width - x0)
    band_mask = np.zeros(canvas, np.uint8)
    cv2.fillPoly(band_mask, [np.round([[0, -1], [width, -1], [width, right], [0, left]]).astype(np.int32)], 1)
    band = band_mask.astype(bool)
    kind = int(rng.integers(3))
    picture = np.zeros_like(deck)
    edge = max(left, right, 1.0)
    if kind == 0:  # a wall, perhaps with windows or banners
        wall = np.array(_WALLS[int(rng.integers(len(_WALLS)))], np.float32)
        picture[:] = wall * (1.0 + 0.04 * _smooth_noise(canvas, 30 * scale + 2, rng))[:, :, None]
        count = int(rng.integers(0, 9))
        pane = tuple(float(c) for c in rng.choice([[230, 236, 242], [250, 250, 235], [60, 70, 90]]))
        for k in range(count):
            cx = (k + 0.5) / count * width
            top_y = 0.15 * (left + (right - left) * cx / width)
            bottom_y = 0.55 * (left + (right - left) * cx / width)
            half = 0.4 * width / count
            cv2.rectangle(picture, (int(cx - half), int(top_y)), (int(cx + half), int(bottom_y)), pane, thickness=-1)
    elif kind == 1:  # stands: rows of seats, fewer px a row further up, with a seated crowd
        seats = [tuple(float(c) * rng.uniform(0.9, 1.1) for c in _SEATS[int(rng.integers(len(_SEATS)))]),
                 (float(rng.uniform(140, 190)),) * 3]
        picture[:] = np.array(seats[1], np.float32)
        crowd = rng.uniform(0.0, 0.6)
        offset, row_h, k = 0.0, rng.uniform(0.03, 0.05) * height, 0
        while offset < edge and k < 60:
            lo, hi = offset, offset + row_h
            polygon = np.round([[0, left - lo], [width, right - lo], [width, right - hi], [0, left - hi]])
            polygon = polygon.astype(np.int32)
            cv2.fillPoly(picture, [polygon], seats[k % 2])
            n_people = int(crowd * width / max(row_h, 2.0))
            for x in rng.uniform(0, width, n_people):
                base = left + (right - left) * x / width - lo
                shirt = tuple(float(c) for c in rng.uniform(20, 235, 3))
                shoulders = max(1, int(0.3 * row_h))
                cv2.ellipse(picture, (int(x), int(base - 0.35 * row_h)), (shoulders, shoulders), 0, 180, 360, shirt,
                            thickness=-1)
                cv2.circle(picture, (int(x), int(base - 0.8 * row_h)), max(1, int(0.2 * row_h)), (200, 160, 130), -1)
            offset, row_h, k = hi, max(2.0, row_h * 0.93), k + 1
    else:  # outdoors: a hedge under the sky
        ys = np.arange(height, dtype=np.float32)[:, None, None] / max(edge, 1.0)
        sky, haze = np.array([150, 190, 230], np.float32), np.array([235, 240, 245], np.float32)
        picture[:] = sky * (1 - 0.3 * ys) + haze * 0.3 * ys
        hedge = np.zeros(canvas, np.uint8)
        depth = rng.uniform(0.3, 0.6)
        outline = np.round([[0, left * (1 - depth)], [width, right * (1 - depth)], [width, right], [0, left]])
        cv2.fillPoly(hedge, [outline.astype(np.int32)], 1)
        green = np.array([50, 95, 45], np.float32) * (1.0 + 0.2 * _smooth_noise(canvas, 6 * scale + 2, rng))[:, :, None]
        picture = np.where(hedge[:, :, None] > 0, green, picture)
    railing = tuple(float(c) for c in rng.choice([[70, 70, 75], [200, 200, 205], [150, 40, 40]]))
    cv2.line(picture, (0, int(left)), (width, int(right)), railing, max(2, round(0.006 * height)))
    deck = np.where(band[:, :, None], picture, deck)
    return np.ascontiguousarray(deck, np.float32), band


def _camera_frame(camera: _Camera, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame of ``camera`` with ``count`` swimmers: uint8 RGB (H, W, 3), int (count, 4)
    boxes ``x0, y0, x1, y1`` (x1/y1 exclusive) and the bool (H, W) pool mask."""
    height, width = camera.shape
    scale = camera.scale
    dx, dy = (int(value) for value in rng.choice(_SHAKE, 2, p=_SHAKE_P))
    ox, oy = _PAD + dx, _PAD + dy
    crop = (slice(oy, oy + height), slice(ox, ox + width))
    homography = np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]]) @ camera.homography
    pool = camera.region[crop].copy()
    rows, columns = camera.texture_shape
    water = camera.water[crop].copy()
    # Caustics: bright lines where smooth noise crosses zero, drawn small in the texture.
    strength, line_width, sigma = camera.caustics
    shrink = min(1.0, 2.5 / sigma)
    small = (max(4, round(rows * shrink)), max(4, round(columns * shrink)))
    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, small).astype(np.float32), (0, 0), sigma * shrink)
    field = np.exp(-((noise / (noise.std() + 1e-6) / line_width) ** 2))
    to_image = homography @ np.diag([1 / shrink, 1 / shrink, 1.0])
    field = cv2.warpPerspective(field, to_image, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
    water += strength * field[:, :, None]
    _draw_ropes(water, camera, homography, rng)
    image = np.where(pool[:, :, None], water, camera.surroundings[crop])
    for _ in range(int(rng.integers(0, 6))):
        _spectator(image, pool, camera, ox, oy, rng)
    light = camera.light[crop]
    image *= light[:, :, None]
    blur = max(1.0, 4.0 * scale)
    for x, y, major, minor, angle, alpha in camera.glare:
        _glare(image, pool, x - ox + rng.normal(0, 0.004 * width), y - oy + rng.normal(0, 0.004 * width),
               (major * rng.uniform(0.85, 1.15), minor * rng.uniform(0.85, 1.15)), angle,
               alpha * rng.uniform(0.75, 1.1), blur)
    for _ in range(int(rng.integers(0, 3))):  # passing glints
        x, y = _local(homography, rng.uniform(0, columns), rng.uniform(0, rows))[0]
        major = rng.uniform(0.005, 0.02) * width
        _glare(image, pool, x, y, (major, major * rng.uniform(0.2, 0.5)), rng.uniform(-10, 10), rng.uniform(0.2, 0.5),
               blur)
    for _ in range(int(rng.integers(1, 5))):
        x, y = _local(homography, rng.uniform(0, columns), rng.uniform(0, rows))[0]
        _splash_at(image, pool, x, y, rng.uniform(4.0, 12.0) * scale, rng)
    boxes = []
    for lane in sorted(rng.choice(camera.lanes, size=count, replace=False).tolist()):
        boxes.append(_camera_swimmer(image, pool, light, camera, homography, lane, rng))
    np.clip(image, 0, 255, out=image)
    return np.rint(image).astype(np.uint8), np.array(boxes, dtype=np.int64).reshape(-1, 4), pool


def _draw_ropes(water: np.ndarray, camera: _Camera, homography: np.ndarray, rng: np.random.Generator) -> None:
    """Lane ropes of alternating floats (about 0.12 m each, 0.1 m thick), swaying a little; in place."""
    rows, columns = camera.texture_shape
    lane_w = rows / camera.lanes
    floats = max(8, round(columns / camera.metre / 0.12))
    xs = np.linspace(0.0, columns, floats + 1)
    for k in range(1, camera.lanes):
        amplitude, phase = rng.uniform(0.0, 0.012) * lane_w, rng.uniform(0, 2 * np.pi)
        sway = amplitude * np.sin(phase + xs / columns * 2 * np.pi * rng.uniform(0.5, 2))
        points = _map(homography, np.stack([xs, k * lane_w + sway], axis=1))
        beside = _map(homography, np.stack([xs, k * lane_w + sway + 1.0], axis=1))
        along = np.hypot(*(points[1:] - points[:-1]).T) / (columns / floats)  # image px per texture px
        local = np.sqrt(along * np.hypot(*(beside - points).T)[:-1])
        thickness = np.clip(np.round(0.1 * camera.metre * local), 1, 12).astype(int)
        for n in range(floats):
            start, stop = points[n], points[n] + 0.8 * (points[n + 1] - points[n])
            colour = camera.ropes[(n + k) % 2]
            cv2.line(water, (round(start[0]), round(start[1])), (round(stop[0]), round(stop[1])),
                     colour, int(thickness[n]))


def _glare(image: np.ndarray, pool: np.ndarray, x: float, y: float, axes: tuple[float, float], angle: float,
           alpha: float, blur: float) -> None:
    """A soft bright ellipse on the water (in place)."""
    x0, y0, x1, y1 = _window(x, y, int(max(axes) + 3 * blur) + 2, image.shape)
    if x1 <= x0 or y1 <= y0:
        return
    glare = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(glare, (round(x) - x0, round(y) - y0), (max(1, int(axes[0])), max(1, int(axes[1]))),
                float(angle), 0, 360, 1.0, thickness=-1)
    glare = cv2.GaussianBlur(glare, (0, 0), blur) * alpha * pool[y0:y1, x0:x1]
    patch = image[y0:y1, x0:x1]
    patch += (255.0 - patch) * glare[:, :, None]


def _splash_at(image: np.ndarray, pool: np.ndarray, x: float, y: float, radius: float,
               rng: np.random.Generator) -> None:
    """White churned water: a cluster of soft bubbles around (x, y), in the pool only (in place)."""
    x0, y0, x1, y1 = _window(x, y, int(4 * radius) + 4, image.shape)
    if x1 <= x0 or y1 <= y0:
        return
    foam = np.zeros((y1 - y0, x1 - x0), np.float32)
    for _ in range(int(rng.integers(4, 10))):
        centre = (int(x + rng.normal(0, radius)) - x0, int(y + rng.normal(0, radius / 2)) - y0)
        cv2.circle(foam, centre, max(1, int(rng.uniform(0.5, 1.2) * radius / 2)), 1.0, thickness=-1)
    foam = cv2.GaussianBlur(foam, (0, 0), max(0.7, radius / 5)) * rng.uniform(0.5, 0.9) * pool[y0:y1, x0:x1]
    patch = image[y0:y1, x0:x1]
    patch += (250.0 - patch) * foam[:, :, None]


def _spectator(image: np.ndarray, pool: np.ndarray, camera: _Camera, ox: int, oy: int,
               rng: np.random.Generator) -> None:
    """A standing spectator (body, head) on the deck, larger nearer the camera; never in the pool (in place)."""
    if not len(camera.spots):
        return
    height = camera.shape[0]
    x, y, clearance = camera.spots[rng.integers(len(camera.spots))] - (ox, oy, 2 * _PAD)
    size = rng.uniform(0.022, 0.035) * height * (0.5 + y / height)  # half the body's height, px
    size = min(size, clearance / 2.7)  # head and body clear of the pool
    x0, y0, x1, y1 = _window(x, y - 1.5 * size, int(3 * size) + 3, image.shape)
    if x1 <= x0 or y1 <= y0:
        return
    patch = image[y0:y1, x0:x1].copy()
    body = tuple(float(c) for c in rng.uniform(20, 235, 3))
    skin = tuple(float(c) for c in rng.choice([[225, 185, 155], [200, 160, 130], [150, 105, 75], [95, 65, 45]]))
    cx = round(x) - x0
    cv2.ellipse(patch, (cx, round(y - size) - y0), (max(2, int(size / 2.2)), max(3, int(size))), 0, 0, 360, body, -1)
    cv2.circle(patch, (cx, round(y - 2.3 * size) - y0), max(2, int(size / 3)), skin, -1)
    inside = pool[y0:y1, x0:x1]
    image[y0:y1, x0:x1] = np.where(inside[:, :, None], image[y0:y1, x0:x1], patch)


def _camera_swimmer(image: np.ndarray, pool: np.ndarray, light: np.ndarray, camera: _Camera, homography: np.ndarray,
                    lane: int, rng: np.random.Generator) -> list[int]:
    """Paint one swimmer in ``lane`` (in place): a body with arms, a coloured cap and a white
    wake, partly submerged, inside the pool; its box (the visible pixels) has its longer side
    in SWIMMER_LENGTH scaled by the frame width. Returns the box ``[x0, y0, x1, y1]``."""
    height, width = camera.shape
    rows, columns = camera.texture_shape
    low, high = SWIMMER_LENGTH[0] * camera.scale, SWIMMER_LENGTH[1] * camera.scale
    lane_w = rows / camera.lanes
    tries = 40
    for attempt in range(tries + 1):
        last = attempt == tries  # a plain, fully visible swimmer mid-lane if no draw fits
        x_t = columns / 2 if last else rng.uniform(0.1, 0.9) * columns
        y_t = (lane + 0.5 + (0.0 if last else rng.uniform(-0.15, 0.15))) * lane_w
        (x, y), direction, local = _local(homography, x_t, y_t)
        if not (0 <= x < width and 0 <= y < height and pool[int(y), int(x)]):
            continue
        perspective = float(np.clip(local / camera.scale_ref, 0.75, 1.25))
        length = (low + high) / 2 / 1.35 if last else camera.scale * rng.uniform(17.0, 40.0) * perspective
        girth = max(2.0, length * rng.uniform(0.2, 0.28))
        heading = float(rng.choice([-1.0, 1.0]))
        across = np.array([-direction[1], direction[0]])
        x0, y0, x1, y1 = _window(x, y, int(np.ceil(1.0 * length + 2.5 * girth)) + 3, image.shape)
        shape = (y1 - y0, x1 - x0)
        parts = np.zeros((3, *shape), np.uint8)

        def at(point: np.ndarray, x0: int = x0, y0: int = y0) -> tuple[int, int]:
            return round(point[0]) - x0, round(point[1]) - y0

        centre = np.array([x, y])
        cv2.ellipse(parts[0], at(centre), (max(1, round(length / 2)), max(1, round(girth / 2))),
                    float(np.rad2deg(np.arctan2(direction[1], direction[0]))), 0, 360, 1, thickness=-1)
        if rng.random() < 0.6:  # an arm reaching forward
            shoulder = centre + heading * direction * 0.25 * length
            hand = (shoulder + heading * direction * rng.uniform(0.2, 0.4) * length
                    + across * rng.uniform(-1.2, 1.2) * girth)
            cv2.line(parts[0], at(shoulder), at(hand), 1, max(1, round(0.3 * girth)))
        cap = centre + heading * direction * 0.46 * length
        cv2.circle(parts[1], at(cap), max(1, round(0.55 * girth)), 1, thickness=-1)
        for _ in range(int(rng.integers(3, 7))):
            spot = (centre - heading * direction * rng.uniform(0.45, 0.7) * length
                    + across * rng.uniform(-1.0, 1.0) * girth)
            cv2.circle(parts[2], at(spot), max(1, round(rng.uniform(0.15, 0.35) * girth)), 1, thickness=-1)
        parts = parts.astype(bool) & pool[y0:y1, x0:x1]
        submerged = np.zeros(shape, bool)
        if not last and rng.random() < 0.6:  # the water hides the body beyond a cut across it, mostly the legs
            ys, xs = np.mgrid[y0:y1, x0:x1]
            along = (xs - x) * direction[0] + (ys - y) * direction[1]
            cut = rng.uniform(-0.4, 0.4) * length
            submerged = heading * along < heading * cut if rng.random() < 0.75 else heading * along > heading * cut
            submerged &= ~parts[1]  # the cap stays above the water
        visible = parts & ~submerged
        ys, xs = np.nonzero(visible.any(axis=0))
        if not len(ys):
            continue
        extent = max(np.ptp(xs), np.ptp(ys)) + 1
        if not last and not low <= extent <= high:
            continue
        brightness = float(light[int(y), int(x)])
        body = np.array(_BODIES[int(rng.integers(len(_BODIES)))], np.float32)
        colours = [body * brightness, np.array(_CAPS[int(rng.integers(len(_CAPS)))], np.float32) * brightness,
                   np.array([245.0, 248.0, 250.0], np.float32)]
        alphas = [rng.uniform(0.45, 1.0), 1.0, rng.uniform(0.85, 1.0)]
        patch = image[y0:y1, x0:x1]
        for part, colour, alpha in zip(visible, colours, alphas):
            patch[part] = alpha * colour + (1 - alpha) * patch[part]
        return [int(xs.min()) + x0, int(ys.min()) + y0, int(xs.max()) + x0 + 1, int(ys.max()) + y0 + 1]
    raise RuntimeError(f"no room for a swimmer in lane {lane}")  # pragma: no cover - the mid-lane fallback always fits


def _write_frame(folder: Path, stem: str, image: np.ndarray, boxes: np.ndarray, region: np.ndarray,
                 formats: tuple[str, ...] | list[str]) -> None:
    """Write one frame: its image, its pool mask and its YOLO and/or VOC annotation (COCO is one file for all)."""
    size = image.shape[:2]
    write_image(folder / "images" / f"{stem}.png", image)
    write_image(folder / "masks" / f"{stem}.png", region.astype(np.uint8) * 255)
    if "yolo" in formats:
        _write_yolo(folder / "labels" / f"{stem}.txt", boxes, size)
    if "voc" in formats:
        _write_voc(folder / "annotations" / f"{stem}.xml", f"{stem}.png", boxes, size)


def _write_yolo(path: Path, boxes: np.ndarray, size: tuple[int, int]) -> None:
    height, width = size
    lines = [
        f"0 {(x0 + x1) / 2 / width:.8f} {(y0 + y1) / 2 / height:.8f} {(x1 - x0) / width:.8f} {(y1 - y0) / height:.8f}"
        for x0, y0, x1, y1 in boxes
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def _write_voc(path: Path, filename: str, boxes: np.ndarray, size: tuple[int, int]) -> None:
    annotation = ET.Element("annotation")
    ET.SubElement(annotation, "filename").text = filename
    dims = ET.SubElement(annotation, "size")
    for tag, value in (("width", size[1]), ("height", size[0]), ("depth", 3)):
        ET.SubElement(dims, tag).text = str(value)
    for x0, y0, x1, y1 in boxes:
        obj = ET.SubElement(annotation, "object")
        ET.SubElement(obj, "name").text = "swimmer"
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
            ET.SubElement(box, tag).text = str(int(value))
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(annotation).write(path, encoding="utf-8", xml_declaration=True)


def _write_coco(path: Path, boxes: list[np.ndarray], size: tuple[int, int], names: list[str] | None = None) -> None:
    """COCO file of ``boxes`` per image; ``names``: the image file names (``pool_000.png``, ... by default)."""
    if names is None:
        names = [f"pool_{index:03d}.png" for index in range(len(boxes))]
    images, annotations = [], []
    for index, (name, image_boxes) in enumerate(zip(names, boxes, strict=True)):
        images.append({"id": index + 1, "file_name": name, "width": size[1], "height": size[0]})
        for x0, y0, x1, y1 in image_boxes.tolist():
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
            })
    categories = [{"id": 1, "name": "swimmer"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}, indent=1))
