"""``dfr stream``: a fitted model on a video file, a camera or a stream URL, frame by frame.

:func:`read_frames` yields RGB frames from OpenCV. A file is read frame by frame, every frame
in order; a camera or URL (or a file with ``realtime=True``, read at its own frame rate) is
read by a background thread that keeps only the newest frame, so that when the model is
slower than the source, frames are skipped instead of queued. :func:`stream_to_folder`
runs :meth:`dfr.AnomalyModel.stream` on them and writes ``overlay.mp4`` (each frame with its
heatmap blended in and the boxes drawn) and ``frames.jsonl`` (one record per frame: source
frame index, time, score, whether the mask is empty, boxes, frames skipped before it). Both
files are complete and playable when the source ends, ``max_frames`` is reached or the run
is interrupted (Ctrl-C, SIGTERM): they are finished and moved into place then.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from dfr.outputs.files import check_output_folder, output_lock, staged_folder
from dfr.outputs.pictures import colourise, overlay


@dataclass
class Frame:
    """One frame read: RGB uint8 (H, W, 3), its index in the source, time in seconds, and
    how many source frames were skipped just before it."""

    image: np.ndarray
    index: int
    time: float
    skipped: int


def open_source(source: str) -> tuple[cv2.VideoCapture, bool]:
    """(an opened capture, whether the source is live): a camera index ("0"), a URL or a file."""
    live = source.isdigit() or "://" in source
    if not live and not Path(source).is_file():
        raise FileNotFoundError(f"{source}: no such video file (or give a camera index such as 0, or a stream URL)")
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise OSError(f"{source}: OpenCV cannot open it as a video file, camera or stream")
    return capture, live


def source_fps(capture: cv2.VideoCapture) -> float:
    """The source's frames per second, or 25 where it does not say."""
    return capture.get(cv2.CAP_PROP_FPS) or 25.0


def read_frames(capture: cv2.VideoCapture, *, live: bool, realtime: bool = False) -> Iterator[Frame]:
    """The capture's frames as :class:`Frame`; newest-frame-only for ``live`` or ``realtime``."""
    fps = source_fps(capture)
    if not (live or realtime):
        index = 0
        while True:
            ok, picture = capture.read()
            if not ok:
                return
            yield Frame(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB), index, index / fps, 0)
            index += 1
    yield from _newest_frames(capture, fps, paced=not live)


def _newest_frames(capture: cv2.VideoCapture, fps: float, paced: bool) -> Iterator[Frame]:
    """A reader thread keeps the newest frame; each take returns it with the number of frames
    skipped since the previous take. ``paced``: read at ``fps``."""
    slot: dict = {"frame": None, "done": False}
    ready = threading.Condition()
    stop = threading.Event()

    def reader() -> None:
        started, index = time.perf_counter(), 0
        while not stop.is_set():
            if paced:
                time.sleep(max(0.0, started + index / fps - time.perf_counter()))
            ok, picture = capture.read()
            with ready:
                if not ok:
                    slot["done"] = True
                else:
                    slot["frame"] = (picture, index)
                ready.notify()
            if not ok:
                return
            index += 1

    thread = threading.Thread(target=reader, name="dfr-stream-reader", daemon=True)
    thread.start()
    started, last = time.perf_counter(), -1
    try:
        while True:
            with ready:
                ready.wait_for(lambda: slot["done"] or (slot["frame"] is not None and slot["frame"][1] != last))
                if slot["frame"] is None or slot["frame"][1] == last:
                    return
                picture, index = slot["frame"]
            skipped, last = index - last - 1, index
            yield Frame(cv2.cvtColor(picture, cv2.COLOR_BGR2RGB), index, index / fps if paced else
                        time.perf_counter() - started, skipped)
    finally:
        stop.set()
        thread.join(timeout=5)


def stream_to_folder(model, frames: Iterator[Frame], out: str | os.PathLike, *, fps: float, overwrite: bool = False,
                     max_frames: int | None = None, progress=print) -> dict:
    """Run ``model.stream`` on ``frames``; write ``overlay.mp4`` and ``frames.jsonl`` into
    ``out``. Returns a summary: frames processed, skipped, anomalous, seconds, frames/s."""
    with output_lock(check_output_folder(out, overwrite)) as out:
        check_output_folder(out, overwrite)
        with staged_folder(out) as staging:
            return _stream_into(model, frames, staging, fps, max_frames, progress)


def _stream_into(model, frames: Iterator[Frame], staging: Path, fps: float, max_frames: int | None, progress) -> dict:
    """:func:`stream_to_folder`'s work, written into ``staging``; Ctrl-C ends the stream and keeps what it wrote."""
    writer, records = None, open(staging / "frames.jsonl", "w")
    summary = {"frames": 0, "skipped": 0, "anomalous": 0}
    started = time.perf_counter()
    source = iter(frames)
    taken: list[Frame] = []

    def images() -> Iterator[np.ndarray]:
        for frame in source:
            if max_frames is not None and len(taken) >= max_frames:
                return
            taken.append(frame)
            yield frame.image

    try:
        for result in model.stream(images()):
            frame = taken[-1]
            if writer is None:
                height, width = frame.image.shape[:2]
                writer = cv2.VideoWriter(str(staging / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                         (width, height))
                if not writer.isOpened():
                    raise OSError(f"{staging.parent}: OpenCV cannot write MP4 video here")
            writer.write(overlay(result.image, colourise(result.anomaly_map, *model.heatmap_range), result.boxes))
            anomalous = bool(result.mask.any())
            records.write(json.dumps({"frame": frame.index, "time": round(frame.time, 4), "score": result.score,
                                      "anomalous": anomalous, "boxes": result.boxes.round(2).tolist(),
                                      "skipped": frame.skipped}) + "\n")
            summary["frames"] += 1
            summary["skipped"] += frame.skipped
            summary["anomalous"] += anomalous
            if progress and summary["frames"] % 100 == 0:
                progress(f"{summary['frames']} frames, {summary['frames'] / (time.perf_counter() - started):.1f} "
                         "frames/s")
    except KeyboardInterrupt:
        summary["interrupted"] = True
    finally:
        records.close()
        if writer is not None:
            writer.release()
    summary["seconds"] = time.perf_counter() - started
    summary["frames_per_second"] = summary["frames"] / max(summary["seconds"], 1e-9)
    return summary
