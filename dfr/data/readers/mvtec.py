"""MVTec AD reader: ``<cat>/train/good``, ``<cat>/test/<defect>``, ``<cat>/ground_truth/<defect>``.

Every test image of a defect folder must have exactly one mask ``<stem>_mask.<ext>`` in
``ground_truth/<defect>`` and every mask one test image; ``test/good`` needs no masks. Images
are read with ``dfr.data.io.read_image``, so grayscale categories (grid, screw, zipper) come back
with one channel by the channel rule, whatever the category is called.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfr.data.files import by_stem, image_files, subfolders
from dfr.data.io import read_image

GOOD = "good"


@dataclass
class MVTecCategory:
    """One category's files; nothing is read until a ``load_*`` helper is called.

    ``test`` lists the test images grouped by defect folder, ``good`` first and the others in
    natural order; ``masks`` holds the paired mask per test image (``None`` for good images)
    and ``defects`` the defect folder name per test image.
    """

    name: str
    root: Path
    train: list[Path]
    test: list[Path]
    masks: list[Path | None]
    defects: list[str]

    @property
    def labels(self) -> np.ndarray:
        """bool (N_test,): True for a test image outside ``test/good``."""
        return np.array([defect != GOOD for defect in self.defects], dtype=bool)


def is_category(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` has the ``train`` and ``test`` folders of an MVTec AD category."""
    folder = Path(folder)
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def read_mvtec(root: str | os.PathLike, categories: list[str] | tuple[str, ...] | None = None) -> list[MVTecCategory]:
    """Read every category under ``root`` (or only ``categories``), in natural order.

    ``root`` may also be one category folder itself.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if is_category(root):
        found = [root]
    else:
        found = [folder for folder in subfolders(root) if is_category(folder)]
    if not found:
        raise ValueError(f"{root}: no MVTec AD category found (expected <category>/train/good and <category>/test)")
    if categories is not None:
        names = {folder.name: folder for folder in found}
        missing = [name for name in categories if name not in names]
        if missing:
            raise ValueError(f"{root}: no category {', '.join(missing)}; found {', '.join(names)}")
        found = [names[name] for name in categories]
    return [read_mvtec_category(folder) for folder in found]


def read_mvtec_category(folder: str | os.PathLike) -> MVTecCategory:
    """Read one category folder and check that test images and masks pair up one to one."""
    folder = Path(folder)
    train = image_files(folder / "train" / GOOD)
    if not train:
        raise ValueError(f"{folder / 'train' / GOOD}: no training images")
    defect_folders = subfolders(folder / "test")
    defect_folders.sort(key=lambda path: path.name != GOOD)
    if not defect_folders:
        raise ValueError(f"{folder / 'test'}: no test folders")
    gt_root = folder / "ground_truth"
    defect_names = {path.name for path in defect_folders}
    if gt_root.is_dir():
        for gt_folder in subfolders(gt_root):
            if gt_folder.name not in defect_names:
                raise ValueError(f"{gt_folder}: masks for a defect with no folder test/{gt_folder.name}")
    test: list[Path] = []
    masks: list[Path | None] = []
    defects: list[str] = []
    for defect_folder in defect_folders:
        images = image_files(defect_folder)
        if not images:
            raise ValueError(f"{defect_folder}: no test images")
        paired = _pair_masks(images, gt_root / defect_folder.name, defect_folder.name != GOOD)
        test += images
        masks += paired
        defects += [defect_folder.name] * len(images)
    return MVTecCategory(folder.name, folder, train, test, masks, defects)


def _pair_masks(images: list[Path], gt_folder: Path, required: bool) -> list[Path | None]:
    """The mask ``<stem>_mask.*`` of each image; unpaired images or masks are errors."""
    if not required and not gt_folder.is_dir():
        return [None] * len(images)
    masks = by_stem(image_files(gt_folder))
    images_by_stem = by_stem(images)
    for mask_stem, mask in masks.items():
        if not (mask_stem.endswith("_mask") and mask_stem[: -len("_mask")] in images_by_stem):
            raise ValueError(f"{mask}: mask without a test image")
    paired = []
    for image in images:
        mask = masks.get(f"{image.stem}_mask")
        if mask is None:
            raise ValueError(f"{gt_folder / (image.stem + '_mask.png')}: missing mask for test image {image}")
        paired.append(mask)
    return paired


def load_mask(path: Path | None, shape: tuple[int, int]) -> np.ndarray:
    """bool (H, W) mask, pixels ``> 0``; ``None`` gives all False of ``shape``."""
    if path is None:
        return np.zeros(shape, dtype=bool)
    mask = read_image(path)[:, :, 0] > 0
    if mask.shape != tuple(shape):
        raise ValueError(f"{path}: mask has shape {mask.shape} but its image has shape {tuple(shape)}")
    return mask


def load_train(category: MVTecCategory) -> list[np.ndarray]:
    """Training images as float32 (H, W, C) in [0, 1] (channel rule: C = 1 or 3)."""
    return [read_image(path) for path in category.train]


def load_test(category: MVTecCategory) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Test images, float32 (H, W, C), and their bool (H, W) masks, in ``category.test`` order."""
    images = [read_image(path) for path in category.test]
    masks = [load_mask(mask, image.shape[:2]) for mask, image in zip(category.masks, images)]
    return images, masks
