"""Writing a :class:`~dfr.Prediction` to a folder: raw maps, heatmaps, masks, overlays, boxes, scores.

Layout of the output folder::

    maps/<name>.npy       float32 anomaly map (H, W) at the input's size
    heatmaps/<name>.png   the map coloured on the model's dataset-wide scale (never per image)
    masks/<name>.png      0/255 mask: map > threshold
    overlays/<name>.png   the input with the heatmap blended in and the boxes drawn
    boxes.json            threshold, colour scale and, per image, boxes [x0, y0, x1, y1, score]
    scores.csv            name, score (image models: the scoring settings' image score; video models: the frame
                          score, summed reconstruction error), number of boxes
    videos/<clip>.mp4     video models only: each clip's frames beside their heatmaps

The folder is written to a temporary sibling and renamed into place, so a failed run leaves
nothing half-written; an existing non-empty folder is replaced only with ``overwrite=True``.
While a run writes ``out`` it holds ``.<out name>.lock`` beside it (:func:`output_lock`): a
second run into the same folder stops at once with a message instead of racing the first.
:class:`PredictionWriter` writes results as they come (``dfr predict`` with ``predict_iter``),
:func:`write_prediction` a whole :class:`~dfr.Prediction`.
"""
from __future__ import annotations

import contextlib
import csv
import heapq
import json
import os
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dfr import distributed
from dfr.api.prediction import ItemPrediction, Prediction
from dfr.data.io import IMAGE_SUFFIXES
from dfr.outputs.files import (
    check_output_folder,
    output_lock,
    replace_folder,
    short_stem,
    staging_folder,
    unique_stems,
)
from dfr.outputs.pictures import colourise, overlay, write_clip_video, write_picture

#: Threads that encode and write results while the model predicts the next ones, and how
#: many results may wait for them (each holds its map and image: about 1 MiB at 256²).
WRITER_THREADS = 2
WRITES_PENDING = 16


class PredictionWriter:
    """Writes results into ``out`` one image at a time, so memory does not grow with their number.

    Use as a context manager: :meth:`add` hands one :class:`~dfr.api.prediction.ItemPrediction`
    (map, heatmap on the fixed ``heatmap_range``, mask, overlay) to background threads that
    write it into a temporary sibling folder while the caller goes on (at most
    ``WRITES_PENDING`` wait). Names, scores and boxes go to a file of records per process, not
    to memory. Leaving the block waits for the writes, adds ``boxes.json`` and ``scores.csv``
    and renames the folder into place. An error or interruption inside the block, or a failed
    write, removes the temporary folder and leaves ``out`` as it was. An existing non-empty
    ``out`` is replaced only with ``overwrite``.
    """

    def __init__(self, out: str | os.PathLike, heatmap_range: tuple[float, float], *, overwrite: bool = False) -> None:
        self.out = check_output_folder(out, overwrite)
        self.overwrite = overwrite
        self.heatmap_range = heatmap_range
        self.stems: set[str] = set()
        self.threshold: float | None = None
        self._pending: deque[Future] = deque()
        self._last_order: Any = None

    def __enter__(self) -> "PredictionWriter":
        staging, error = None, None
        self._lock = contextlib.ExitStack()
        if distributed.is_main():
            try:
                self._lock.enter_context(output_lock(self.out))
                check_output_folder(self.out, self.overwrite)
                staging = staging_folder(self.out)
                for sub in ("maps", "heatmaps", "masks", "overlays"):
                    (staging / sub).mkdir()
            except OSError as caught:
                self._lock.close()
                error = caught
        distributed.check_all(error)
        self.staging = distributed.broadcast(staging)
        self._records = open(self._records_path(distributed.rank()), "w")
        self._threads = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="dfr-writer")
        return self

    def _records_path(self, rank: int) -> Path:
        return self.staging / f".records-{rank}.jsonl"

    def add(self, item: ItemPrediction, stem: str | None = None, order: Any = None) -> None:
        """Write one result; its files are named ``stem`` (default: the item's name without an
        image suffix). A stem used before is refused (pass stems from :func:`unique_stems`).
        ``order``: where the result goes in ``boxes.json`` and ``scores.csv`` among those of
        every process (default: after the previous one); it must increase from one call to the
        next (a number, or a tuple such as ``(clip, frame)``)."""
        if stem is None:
            stem = short_stem(Path(item.name).stem if Path(item.name).suffix.lower() in IMAGE_SUFFIXES else item.name)
        if stem in self.stems:
            raise ValueError(f"{self.out}: two results named {stem!r}; give unique names (unique_stems)")
        order = len(self.stems) if order is None else order
        if self.stems and not order > self._last_order:
            raise ValueError(f"{self.out}: order must increase from one result to the next, got {order!r} after "
                             f"{self._last_order!r}")
        self.stems.add(stem)
        self._last_order = order
        self._pending.append(self._threads.submit(self._write_files, item, stem))
        while len(self._pending) > WRITES_PENDING:
            self._pending.popleft().result()
        record = {"order": order, "name": stem, "score": float(item.score), "boxes": item.boxes.round(4).tolist()}
        self._records.write(json.dumps(record) + "\n")
        self.threshold = item.threshold

    def _write_files(self, item: ItemPrediction, stem: str) -> None:
        np.save(self.staging / "maps" / f"{stem}.npy", item.anomaly_map.astype(np.float32))
        heatmap = colourise(item.anomaly_map, *self.heatmap_range)
        write_picture(self.staging / "heatmaps" / f"{stem}.png", heatmap)
        write_picture(self.staging / "masks" / f"{stem}.png", item.mask.astype(np.uint8) * 255)
        write_picture(self.staging / "overlays" / f"{stem}.png", overlay(item.image, heatmap, item.boxes))

    def _drain(self, kind: type | None, error: BaseException | None) -> tuple[type | None, BaseException | None]:
        """Wait for the background writes (cancel those not started when ``kind`` is an error);
        return (kind, error), or a failed write's when there was none before."""
        try:
            while self._pending:
                future = self._pending.popleft()
                if kind is not None:
                    future.cancel()
                else:
                    future.result()
        except BaseException as caught:
            kind, error = type(caught), caught
        self._threads.shutdown(wait=True, cancel_futures=True)
        self._records.close()
        return kind, error

    def __exit__(self, kind, error, trace) -> None:
        """Waits for the writes; rank 0 merges every process's records into the summaries and
        renames the folder; an error on any process removes the temporary folder and stops
        every process."""
        with self._lock:
            self._exit(kind, error)

    def _exit(self, kind: type | None, error: BaseException | None) -> None:
        raised = kind
        kind, error = self._drain(kind, error)
        shared = distributed.all_gather((f"{kind.__name__}: {error}", None) if kind else (None, self.threshold))
        failures = [(rank, message) for rank, (message, _) in enumerate(shared) if message is not None]
        if failures:
            if distributed.is_main():
                shutil.rmtree(self.staging, ignore_errors=True)
            distributed.barrier()
            if raised is None:
                if error is not None:
                    raise error  # a write of this process failed
                rank, message = failures[0]
                raise RuntimeError(f"{self.out}: nothing written, rank {rank} failed: {message}")
            return
        problem = None
        if distributed.is_main():
            try:
                self._finish(next((threshold for _, threshold in shared if threshold is not None), None))
            except BaseException as caught:
                shutil.rmtree(self.staging, ignore_errors=True)
                problem = caught
        distributed.check_all(problem)

    def _finish(self, threshold: float | None) -> None:
        """Write boxes.json and scores.csv from the processes' records, merged in their
        ``order`` one at a time, and move the folder into place (an existing ``out`` is moved
        aside first and removed only once the new one is in place)."""
        paths = [self._records_path(rank) for rank in range(distributed.world_size())]
        streams = [open(path) for path in paths]
        try:
            records = heapq.merge(*(map(json.loads, stream) for stream in streams), key=lambda record: record["order"])
            with open(self.staging / "boxes.json", "w") as boxes, \
                    open(self.staging / "scores.csv", "w", newline="", encoding="utf-8", errors="surrogateescape") as scores:
                boxes.write(f'{{"threshold": {json.dumps(threshold)}, "heatmap_range": {json.dumps(list(self.heatmap_range))}, '
                            f'"images": [')
                table = csv.writer(scores)
                table.writerow(["name", "score", "boxes"])
                for index, record in enumerate(records):
                    del record["order"]
                    boxes.write(("," if index else "") + "\n" + json.dumps(record))
                    table.writerow([record["name"], f"{record['score']:.6g}", len(record["boxes"])])
                boxes.write("\n]}\n")
        finally:
            for stream in streams:
                stream.close()
        for path in paths:
            path.unlink()
        replace_folder(self.staging, self.out)


def write_prediction(
    out: str | os.PathLike,
    prediction: Prediction,
    images: list[np.ndarray],
    names: list[str],
    heatmap_range: tuple[float, float],
    *,
    clips: list[tuple[str, int]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write everything for ``prediction`` of ``images`` (float (H, W, C) in [0, 1]) into ``out``.

    ``clips`` (video models): ``(clip name, number of frames)`` of the concatenated clips that
    ``images`` are the frames of; adds ``videos/<clip name>.mp4``.
    """
    with PredictionWriter(out, heatmap_range, overwrite=overwrite) as writer:
        for index, (name, stem) in enumerate(zip(names, unique_stems(names))):
            writer.add(prediction.item(index, name, images[index]), stem)
        writer.threshold = prediction.threshold
        if clips:
            clip_names, lengths = zip(*clips)
            write_clip_videos(writer.staging / "videos", prediction, images, unique_stems(clip_names), lengths,
                              heatmap_range)
    return writer.out


def write_clip_videos(
    folder: str | os.PathLike,
    prediction: Prediction,
    frames: list[np.ndarray],
    clip_names: list[str],
    clip_lengths: list[int],
    heatmap_range: tuple[float, float],
) -> list[Path]:
    """One MP4 per clip, ``<folder>/<clip name>.mp4``, of a prediction over concatenated clips.

    ``frames`` and the prediction's items are the clips' frames in order; clip ``k`` is the
    ``clip_lengths[k]`` items after those of the clips before it.
    """
    written, start = [], 0
    for name, length in zip(clip_names, clip_lengths):
        chosen = range(start, start + length)
        written.append(write_clip_video(
            Path(folder) / f"{name}.mp4", frames[start:start + length], [prediction.anomaly_maps[i] for i in chosen],
            np.asarray(prediction.scores)[start:start + length], prediction.threshold, heatmap_range,
        ))
        start += length
    return written
