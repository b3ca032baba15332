"""The result of :meth:`dfr.AnomalyModel.predict`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """Anomaly maps, scores, masks and boxes for a batch of images or frames.

    Attributes:
        anomaly_maps: float32 array (N, H, W), or a list of (H, W) arrays when the inputs
            differ in size; each map is at its input's own resolution.
        scores: float array (N,), one score per image or frame (by the model's
            ``scoring.image_score``; video models: the frame score).
        masks: bool maps shaped like ``anomaly_maps``: ``map > threshold``.
        boxes: one float array (k, 5) per image: ``x0, y0, x1, y1, score`` in pixels, with
            ``x1``/``y1`` exclusive and the score the map maximum inside the box.
        threshold: the pixel threshold used to make the masks.
    """

    anomaly_maps: np.ndarray | list[np.ndarray]
    scores: np.ndarray
    masks: np.ndarray | list[np.ndarray]
    boxes: list[np.ndarray]
    threshold: float

    def __len__(self) -> int:
        return len(self.scores)
