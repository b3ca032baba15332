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
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {tuple(formats)}")
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
        stem = f"pool_{index:03d}"
        write_image(folder / "images" / f"{stem}.png", image)
        write_image(folder / "masks" / f"{stem}.png", region.astype(np.uint8) * 255)
        if "yolo" in formats:
            _write_yolo(folder / "labels" / f"{stem}.txt", image_boxes, (height, width))
        if "voc" in formats:
            _write_voc(folder / "annotations" / f"{stem}.xml", f"{stem}.png", image_boxes, (height, width))
        images.append(image)
        boxes.append(image_boxes)
        regions.append(region)
    if "coco" in formats:
        _write_coco(folder / "annotations.json", boxes, (height, width))
    return SyntheticPool(folder, images, boxes, regions)


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


def _write_coco(path: Path, boxes: list[np.ndarray], size: tuple[int, int]) -> None:
    images, annotations = [], []
    for index, image_boxes in enumerate(boxes):
        images.append({"id": index + 1, "file_name": f"pool_{index:03d}.png", "width": size[1], "height": size[0]})
        for x0, y0, x1, y1 in image_boxes.tolist():
            annotations.append({
                "id": len(annotations) + 1, "image_id": index + 1, "category_id": 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
            })
    categories = [{"id": 1, "name": "swimmer"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}, indent=1))
