"""Pictures of results: heatmaps on a fixed colour scale, overlays with boxes, clip videos."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from dfr.outputs.files import atomic_path


def colourise(anomaly_map: np.ndarray, low: float, high: float) -> np.ndarray:
    """uint8 BGR heatmap (H, W, 3) of ``anomaly_map`` on the fixed scale [low, high]."""
    scaled = np.clip((anomaly_map - low) / max(high - low, 1e-12), 0.0, 1.0)
    return cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) of a float image (H, W, 1|3) in [0, 1]."""
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    return cv2.cvtColor((rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def overlay(image: np.ndarray, heatmap: np.ndarray, boxes: np.ndarray, true_boxes: np.ndarray | None = None) -> np.ndarray:
    """uint8 BGR image: the input (H, W, 1|3) in [0, 1] blended with ``heatmap``, boxes in green.

    ``true_boxes`` (k, 4+) ``x0, y0, x1, y1``, when given, are drawn in cyan beneath them.
    """
    picture = cv2.addWeighted(to_bgr(image), 0.6, heatmap, 0.4, 0.0)
    for x0, y0, x1, y1 in (np.zeros((0, 4)) if true_boxes is None else np.asarray(true_boxes)[:, :4]):
        cv2.rectangle(picture, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), (255, 255, 0), 1)
    for x0, y0, x1, y1, score in boxes:
        cv2.rectangle(picture, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), (0, 255, 0), 1)
        cv2.putText(picture, f"{score:.3g}", (int(x0), max(int(y0) - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, (0, 255, 0), 1)
    return picture


def write_picture(path: Path, picture: np.ndarray) -> None:
    """Encode by ``path``'s suffix and write through Python, which takes any file name the
    system does (OpenCV's own writer needs UTF-8 names)."""
    encoded, data = cv2.imencode(path.suffix, picture)
    if not encoded:
        raise OSError(f"{path}: could not encode the image")
    path.write_bytes(data.tobytes())


def write_clip_video(
    path: str | os.PathLike,
    frames: list[np.ndarray],
    maps: list[np.ndarray],
    scores: np.ndarray,
    threshold: float,
    heatmap_range: tuple[float, float],
    *,
    fps: float = 10.0,
) -> Path:
    """An MP4 of a clip: per frame the input beside its heatmap with the mask outlined and the score.

    ``frames``: float (H, W, C) in [0, 1]; ``maps``: (H, W) per frame; ``scores``: one per
    frame. Frames whose mask is not empty get a red score. Written to a temporary file, then
    renamed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with atomic_path(path) as temporary:
        writer = cv2.VideoWriter(str(temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps, (2 * width, height))
        try:
            if not writer.isOpened():
                raise OSError(f"{path}: OpenCV cannot write MP4 video here")
            for index, (frame, anomaly_map, score) in enumerate(zip(frames, maps, scores)):
                heatmap = colourise(anomaly_map, *heatmap_range)
                mask = (anomaly_map > threshold).astype(np.uint8)
                contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(heatmap, contours, -1, (255, 255, 255), 1)
                picture = np.hstack([to_bgr(frame), heatmap])
                colour = (0, 0, 255) if mask.any() else (255, 255, 255)
                cv2.putText(picture, f"{index} score {score:.4g}", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
                writer.write(picture)
        finally:
            writer.release()
    return path
