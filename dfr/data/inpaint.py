"""Object-free training images: paint annotated objects out with OpenCV inpainting."""
from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import ArrayLike

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def inpaint_boxes(
    image: np.ndarray, boxes: ArrayLike, *, margin: int = 2, radius: float = 5.0, method: str = "telea"
) -> np.ndarray:
    """``image`` with everything inside ``boxes`` replaced by OpenCV inpainting from around it.

    Args:
        image: (H, W), (H, W, 1) or (H, W, 3); uint8, or float in [0, 1].
        boxes: (k, 4+) ``x0, y0, x1, y1`` in pixels, ``x1``/``y1`` exclusive (extra columns,
            such as scores, are ignored); boxes are rounded outwards and clipped to the image.
        margin: pixels added on every side of each box (covers soft object edges).
        radius: inpainting neighbourhood radius in pixels.
        method: ``"telea"`` (Telea 2004) or ``"ns"`` (Navier-Stokes).

    Returns:
        A new image of the same shape and dtype; pixels outside the enlarged boxes are
        unchanged. Float images are inpainted at 8-bit precision.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"expected an image (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
    boxes = np.atleast_2d(np.asarray(boxes, dtype=np.float64))
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise ValueError(f"boxes must be (k, 4+) x0, y0, x1, y1, got shape {boxes.shape}")
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    for x0, y0, x1, y1 in boxes[:, :4]:
        top, left = max(0, int(np.floor(y0)) - margin), max(0, int(np.floor(x0)) - margin)
        bottom, right = max(0, int(np.ceil(y1)) + margin), max(0, int(np.ceil(x1)) + margin)
        mask[top:bottom, left:right] = 1
    if not mask.any():
        return image.copy()
    is_float = np.issubdtype(image.dtype, np.floating)
    if not is_float and image.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {image.dtype}: use uint8 or float in [0, 1]")
    as_bytes = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8) if is_float else image
    painted = cv2.inpaint(as_bytes, mask, radius, METHODS[method]).reshape(image.shape)
    if is_float:
        painted = painted.astype(image.dtype) / np.asarray(255.0, image.dtype)
    return np.where(mask.reshape(height, width, *([1] * (image.ndim - 2))).astype(bool), painted, image)
