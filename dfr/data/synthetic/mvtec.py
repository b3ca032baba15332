"""MVTec AD-style categories from scikit-image texture photos with planted defects.

Each category is a texture (``brick``, ``grass``, ``gravel``) cut into crops by
``dfr.data.synthetic.defects.defect_dataset``; defects of several kinds are planted with exact masks and
written in the MVTec AD layout as 8-bit gray PNGs (masks 0/255).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dfr.data.files import prepare_folder, to_uint8, write_image
from dfr.data.io import natural_key
from dfr.data.readers.mvtec import GOOD
from dfr.data.synthetic.defects import DefectDataset, defect_dataset


def write_mvtec_like(
    root: str | os.PathLike,
    categories: tuple[str, ...] | list[str] = ("brick",),
    *,
    n_train: int = 24,
    n_test: int = 12,
    size: int = 128,
    good_fraction: float = 0.25,
    seed: int = 0,
    disjoint: bool = True,
    overwrite: bool = False,
) -> dict[str, DefectDataset]:
    """Write ``root/<texture>/{train,test,ground_truth}`` for each texture in ``categories``.

    Category ``i`` uses seed ``seed + i``; ``disjoint`` as for ``dfr.data.synthetic.defects.defect_dataset``. Returns, per category, what was written: images
    as float32 (size, size) exactly as stored (uint8 / 255), with test images, masks and
    defect names in the order ``read_mvtec`` lists them (``good`` first, then defect folders
    in natural order, files in natural order).
    """
    root = Path(root)
    written = {}
    for index, name in enumerate(categories):
        data = defect_dataset(
            name, n_train=n_train, n_test=n_test, size=size, good_fraction=good_fraction, seed=seed + index,
            disjoint=disjoint,
        )
        written[name] = write_category(prepare_folder(root / name, overwrite), data)
    return written


def write_category(folder: Path, data: DefectDataset) -> DefectDataset:
    """Write ``data`` into the empty category folder ``folder`` in the MVTec AD layout; return what was written.

    Images go through ``to_uint8`` (8-bit gray PNGs), masks as 0/255; the returned images are
    float32 (uint8 / 255) in the order ``read_mvtec_category`` lists them, as ``write_mvtec_like`` says.
    """
    train = [to_uint8(image) for image in data.train]
    for index, image in enumerate(train):
        write_image(folder / "train" / GOOD / f"{index:03d}.png", image)
    order = sorted(set(data.defects), key=lambda defect: (defect != GOOD, natural_key(defect)))
    test, masks, defects = [], [], []
    for defect in order:
        items = [(image, mask) for image, mask, kind in zip(data.test, data.masks, data.defects) if kind == defect]
        for index, (image, mask) in enumerate(items):
            image = to_uint8(image)
            write_image(folder / "test" / defect / f"{index:03d}.png", image)
            if defect != GOOD:
                write_image(folder / "ground_truth" / defect / f"{index:03d}_mask.png", mask.astype(np.uint8) * 255)
            test.append(image)
            masks.append(mask.copy())
            defects.append(defect)
    return DefectDataset(
        [image.astype(np.float32) / 255.0 for image in train],
        [image.astype(np.float32) / 255.0 for image in test],
        masks,
        defects,
    )
