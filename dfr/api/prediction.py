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

    def item(self, index: int, name: str, image: np.ndarray) -> "ItemPrediction":
        """The result for input ``index``, named ``name``, with its input ``image``."""
        return ItemPrediction(name, self.anomaly_maps[index], float(self.scores[index]), self.masks[index],
                              self.boxes[index], self.threshold, image)


@dataclass
class ItemPrediction:
    """The result for one image or frame, as :meth:`dfr.AnomalyModel.predict_iter` yields it.

    Attributes:
        name: the image's file name, ``image_<i>`` for the i-th array, or for a video frame
            ``<clip>_<frame index>`` (``clip_<i>`` for the i-th array clip).
        anomaly_map: float32 (H, W) at the input's resolution.
        score: the image or frame score.
        mask: bool (H, W).
        boxes: float (k, 5) ``x0, y0, x1, y1, score``.
        threshold: the pixel threshold of the mask.
        image: the input as the model read it, float32 (H, W, C) in [0, 1] (video frames:
            gray, C = 1), for drawing overlays.
    """

    name: str
    anomaly_map: np.ndarray
    score: float
    mask: np.ndarray
    boxes: np.ndarray
    threshold: float
    image: np.ndarray
