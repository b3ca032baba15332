"""Swimming-pool reader: images, swimmer boxes (YOLO, Pascal VOC or COCO) and pool masks.

Layout (``images/`` may be left out, the images then lying in the root itself)::

    <root>/images/<stem>.png|jpg|...     the photos
    <root>/labels/<stem>.txt             YOLO: "class cx cy w h" per line, normalised to [0, 1]
    <root>/annotations/<stem>.xml        Pascal VOC (also Annotations/); 1-based inclusive pixels
    <root>/annotations.json              COCO (or any one *.json in root or annotations/)
    <root>/masks/<stem>.png              optional pool-region masks, pool pixels > 0

YOLO and VOC files may also lie next to the images. The format is detected from the files on
disk; when several are present, ``format`` must say which to use. A YOLO or VOC file missing
for an image means no swimmers there; YOLO's ``classes.txt`` is ignored. Every annotated
object counts as a swimmer. Boxes come back as float (k, 4) ``x0, y0, x1, y1`` in pixels,
``x1``/``y1`` exclusive (the convention of ``dfr.metrics.box_metrics``).
"""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from dfr.data.files import by_stem, image_files
from dfr.data.inpaint import inpaint_boxes
from dfr.data.io import read_image, to_float_image

FORMATS = ("yolo", "voc", "coco")


@dataclass
class PoolDataset:
    """Image files, swimmer boxes per image (float (k, 4), pixels) and pool masks or ``None``."""

    root: Path
    images: list[Path]
    boxes: list[np.ndarray]
    region_masks: list[Path] | None
    format: str

    @property
    def object_free(self) -> list[int]:
        """Indices of the images without any swimmer."""
        return [index for index, boxes in enumerate(self.boxes) if len(boxes) == 0]


@dataclass
class PoolSplit:
    """Normal training images (float32 (H, W, C) in [0, 1]) and the images kept for testing.

    ``train[i]`` comes from image ``train_indices[i]`` (empty from :func:`split_indices`);
    ``method`` is ``"object_free"`` or ``"inpaint"``; ``inpainted``: the training images whose
    swimmers are painted out.
    """

    train: list[np.ndarray]
    train_indices: list[int]
    test_indices: list[int]
    method: str
    inpainted: list[int] = field(default_factory=list)


def _folders(*candidates: Path) -> list[Path]:
    unique = []
    for folder in candidates:
        if folder.is_dir() and folder not in unique:
            unique.append(folder)
    return unique


def _visible_files(folders: list[Path], suffix: str) -> list[Path]:
    return [
        path
        for folder in folders
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix.lower() == suffix and not path.name.startswith(".")
    ]


def _images_folder(root: Path) -> Path:
    return root / "images" if (root / "images").is_dir() else root


def detect_formats(root: str | os.PathLike) -> dict[str, list[Path]]:
    """The annotation files of each format found under ``root`` (formats with none left out)."""
    root = Path(root)
    images = _images_folder(root)
    found = {
        "yolo": [
            path
            for path in _visible_files(_folders(root / "labels", images), ".txt")
            if path.name != "classes.txt"
        ],
        "voc": _visible_files(_folders(root / "annotations", root / "Annotations", images), ".xml"),
        "coco": _visible_files(_folders(root, root / "annotations"), ".json"),
    }
    return {name: files for name, files in found.items() if files}


def read_pool(root: str | os.PathLike, *, format: Literal["yolo", "voc", "coco"] | None = None) -> PoolDataset:
    """Read the images, the swimmer boxes in ``format`` (detected when ``None``) and pool masks."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    images = image_files(_images_folder(root))
    if not images:
        raise ValueError(f"{_images_folder(root)}: no images")
    found = detect_formats(root)
    if format is None:
        if len(found) != 1:
            what = ", ".join(found) if found else "none"
            raise ValueError(
                f"{root}: cannot tell the annotation format (found: {what}); pass format= one of {FORMATS}"
            )
        format = next(iter(found))
    if format not in FORMATS:
        raise ValueError(f"unknown annotation format {format!r}; choose from {FORMATS}")
    files = found.get(format, [])
    if format == "coco":
        if len(files) != 1:
            raise ValueError(f"{root}: expected one COCO *.json file, found {len(files)}")
        boxes = _read_coco(files[0], images)
    else:
        annotations = by_stem(files)
        image_stems = by_stem(images)
        for stem, path in annotations.items():
            if stem not in image_stems:
                raise ValueError(f"{path}: annotation without an image")
        reader = _read_yolo if format == "yolo" else _read_voc
        boxes = [reader(annotations[image.stem], image) if image.stem in annotations else np.zeros((0, 4))
                 for image in images]
    return PoolDataset(root, images, boxes, _region_masks(root, images), format)


def _region_masks(root: Path, images: list[Path]) -> list[Path] | None:
    if not (root / "masks").is_dir():
        return None
    masks = by_stem(image_files(root / "masks"))
    image_stems = by_stem(images)
    for stem, path in masks.items():
        if stem not in image_stems:
            raise ValueError(f"{path}: pool mask without an image")
    missing = [image for image in images if image.stem not in masks]
    if missing:
        raise ValueError(f"{root / 'masks'}: no pool mask for {missing[0].name} ({len(missing)} images without one)")
    return [masks[image.stem] for image in images]


def _checked(boxes: list[list[float]], size: tuple[int, int] | None, where: str) -> np.ndarray:
    """float (k, 4) boxes; more than 1 px outside the image or empty after clipping is an error."""
    array = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    if size is not None:
        height, width = size
        limit = np.array([-1.0, -1.0, width + 1.0, height + 1.0])
        outside = (array[:, :2] < limit[:2]).any(axis=1) | (array[:, 2:] > limit[2:]).any(axis=1)
        if outside.any():
            raise ValueError(f"{where}: box {array[outside][0].tolist()} lies outside the {width}x{height} image")
        array = np.clip(array, 0.0, [width, height, width, height])
    empty = (array[:, 2] <= array[:, 0]) | (array[:, 3] <= array[:, 1])
    if empty.any():
        raise ValueError(f"{where}: empty box {array[empty][0].tolist()} (x1 <= x0 or y1 <= y0)")
    return array


def _read_yolo(path: Path, image: Path) -> np.ndarray:
    height, width = read_image(image).shape[:2]
    boxes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            _, cx, cy, w, h = (float(value) for value in fields)
        except ValueError:
            raise ValueError(f"{path}, line {number}: expected 'class cx cy w h', got {line.strip()!r}") from None
        boxes.append([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
    return _checked(boxes, (height, width), str(path))


def _read_voc(path: Path, image: Path) -> np.ndarray:
    try:
        tree = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ValueError(f"{path}: not valid XML ({error})") from None
    width, height = tree.findtext("size/width"), tree.findtext("size/height")
    size = (int(float(height)), int(float(width))) if width and height else None
    boxes = []
    for index, obj in enumerate(tree.iter("object")):
        box = obj.find("bndbox")
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"{path}: object {index} has no valid bndbox xmin/ymin/xmax/ymax") from None
        boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])
    return _checked(boxes, size, str(path))


def _read_coco(path: Path, images: list[Path]) -> list[np.ndarray]:
    try:
        data = json.loads(path.read_text())
        entries = {entry["id"]: entry for entry in data["images"]}
        annotations = data["annotations"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a COCO file with 'images' and 'annotations' ({error!r})") from None
    on_disk = {image.name: index for index, image in enumerate(images)}
    listed: dict[object, int] = {}
    for image_id, entry in entries.items():
        name = Path(entry["file_name"]).name
        if name not in on_disk:
            raise ValueError(f"{path}: image {entry['file_name']!r} (id {image_id}) not found in {images[0].parent}")
        listed[image_id] = on_disk[name]
    unlisted = sorted(set(range(len(images))) - set(listed.values()))
    if unlisted:
        raise ValueError(f"{path}: {images[unlisted[0]].name} is not listed ({len(unlisted)} images are not)")
    boxes: list[list[list[float]]] = [[] for _ in images]
    for annotation in annotations:
        image_id = annotation.get("image_id")
        if image_id not in listed:
            raise ValueError(f"{path}: annotation {annotation.get('id')} refers to unknown image_id {image_id}")
        x, y, w, h = (float(value) for value in annotation["bbox"])
        boxes[listed[image_id]].append([x, y, x + w, y + h])
    result = [np.zeros((0, 4))] * len(images)
    for image_id, index in listed.items():
        entry = entries[image_id]
        size = (int(entry["height"]), int(entry["width"])) if "height" in entry and "width" in entry else None
        result[index] = _checked(boxes[index], size, f"{path} (image {entry['file_name']})")
    return result


def load_region_mask(dataset: PoolDataset, index: int, shape: tuple[int, int]) -> np.ndarray:
    """bool (H, W) pool region of image ``index`` (all True without masks); ``shape`` is its (H, W)."""
    if dataset.region_masks is None:
        return np.ones(shape, dtype=bool)
    path = dataset.region_masks[index]
    mask = read_image(path)[:, :, 0] > 0
    if mask.shape != tuple(shape):
        raise ValueError(f"{path}: pool mask has shape {mask.shape} but its image has shape {tuple(shape)}")
    return mask


def boxes_to_mask(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """bool (H, W), True inside any box (float (k, 4+) pixels, x1/y1 exclusive, rounded outwards)."""
    mask = np.zeros(shape, dtype=bool)
    for box in np.asarray(boxes, dtype=np.float64):
        x0, y0, x1, y1 = box[:4]
        mask[max(0, int(np.floor(y0))) : int(np.ceil(y1)), max(0, int(np.floor(x0))) : int(np.ceil(x1))] = True
    return mask


def inpaint_training_images(dataset: PoolDataset, indices: Sequence[int]) -> list[np.ndarray]:
    """Images ``indices`` with their swimmer boxes inpainted away (:func:`dfr.data.inpaint.inpaint_boxes`).

    Returns float32 (H, W, C) in [0, 1] per image.
    """
    return [to_float_image(np.asarray(inpaint_boxes(read_image(dataset.images[i]), dataset.boxes[i]))) for i in indices]


def split_indices(
    dataset: PoolDataset,
    method: Literal["object_free", "inpaint"] = "object_free",
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> PoolSplit:
    """Which images of a pool dataset train and which test, without reading any (``train`` empty).

    ``"object_free"``: train on the images without swimmers, test on those with swimmers.
    ``"inpaint"``: a seeded ``test_fraction`` of the images with swimmers is kept for
    testing; the others (``inpainted``) have their boxes inpainted and join the object-free
    ones for training.
    """
    free = dataset.object_free
    with_swimmers = [index for index, boxes in enumerate(dataset.boxes) if len(boxes)]
    if method == "object_free":
        if not free:
            raise ValueError(f"{dataset.root}: no image without swimmers; use method='inpaint'")
        return PoolSplit([], free, with_swimmers, method)
    if method != "inpaint":
        raise ValueError(f"unknown method {method!r}; choose 'object_free' or 'inpaint'")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(with_swimmers).tolist()
    n_test = max(1, round(test_fraction * len(order))) if order else 0
    test, inpainted = sorted(order[:n_test]), sorted(order[n_test:])
    train_indices = sorted(free + inpainted)
    if not train_indices:
        raise ValueError(f"{dataset.root}: nothing left to train on; lower test_fraction")
    return PoolSplit([], train_indices, test, method, inpainted)


def training_images(dataset: PoolDataset, split: PoolSplit) -> list[Path] | list[np.ndarray]:
    """The training images of ``split``: their paths, or with inpainting float32 (H, W, C) arrays."""
    if not split.inpainted:
        return [dataset.images[i] for i in split.train_indices]
    cleaned = dict(zip(split.inpainted, inpaint_training_images(dataset, split.inpainted)))
    return [cleaned[i] if i in cleaned else read_image(dataset.images[i]) for i in split.train_indices]


def training_split(
    dataset: PoolDataset,
    method: Literal["object_free", "inpaint"] = "object_free",
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> PoolSplit:
    """:func:`split_indices` with ``train`` read: normal training images float32 (H, W, C) in
    [0, 1] (inpainted where ``method="inpaint"``) and the images kept for testing."""
    split = split_indices(dataset, method, test_fraction=test_fraction, seed=seed)
    images = training_images(dataset, split)
    split.train = [image if isinstance(image, np.ndarray) else read_image(image) for image in images]
    return split
