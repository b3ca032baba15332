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
import hashlib
import heapq
import json
import os
import shutil
import tempfile
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from dfr import distributed
from dfr.io import IMAGE_SUFFIXES
from dfr.prediction import ItemPrediction, Prediction


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


#: Longest output file stem, in bytes: room for ``_<index>``, a suffix and temporary-name parts
#: within the 255 bytes most file systems allow for a name.
MAX_STEM_BYTES = 200


def short_stem(stem: str) -> str:
    """``stem`` itself, or when longer than ``MAX_STEM_BYTES`` its start plus ``~`` and 8 hex
    digits of its SHA-1, so that distinct long names stay distinct."""
    raw = os.fsencode(stem)
    if len(raw) <= MAX_STEM_BYTES:
        return stem
    start = stem[:MAX_STEM_BYTES - 9]
    while len(os.fsencode(start)) > MAX_STEM_BYTES - 9:  # multi-byte characters
        start = start[:-1]
    return f"{start}~{hashlib.sha1(raw).hexdigest()[:8]}"


def unique_stems(names: list[str]) -> list[str]:
    """File stems without suffix, shortened to ``MAX_STEM_BYTES`` (:func:`short_stem`) and made
    unique by appending ``_<index>`` where they repeat."""
    stems = [short_stem(Path(name).stem) for name in names]
    repeated = {stem for stem, count in Counter(stems).items() if count > 1}
    return [f"{stem}_{index}" if stem in repeated else stem for index, stem in enumerate(stems)]


def check_output_folder(out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse a non-empty existing folder unless ``overwrite``; return the folder as a Path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty (use --overwrite / overwrite=True to replace it)")
    return out


@contextlib.contextmanager
def output_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on ``.<name>.lock`` next to ``out`` (created; removed at the end)
    for the block. Raises ``FileExistsError`` naming the other process when a second dfr run
    writes the same ``out``. Callers check ``out`` again inside the block, as a run before them
    may have written it. POSIX only; elsewhere a no-op."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = out.parent / f".{out.name}.lock"
    try:
        import fcntl
    except ImportError:  # Windows
        yield out
        return
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process"
            handle.close()
            raise FileExistsError(f"{out}: another dfr run ({holder}) is writing this folder; wait for it or "
                                  "choose another output folder") from None
        if _same_file(handle, path):
            break
        handle.close()  # locked a file that the run before removed meanwhile: lock the new one
    with handle:
        try:
            handle.truncate(0)
            handle.write(f"process {os.getpid()}")
            handle.flush()
            yield out
        finally:
            path.unlink(missing_ok=True)


def _same_file(handle, path: Path) -> bool:
    """Whether the open ``handle`` is still the file at ``path``."""
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


#: Threads that encode and write results while the model predicts the next ones, and how
#: many results may wait for them (each holds its map and image: about 1 MiB at 256²).
WRITER_THREADS = 2
WRITES_PENDING = 16


class PredictionWriter:
    """Writes results into ``out`` one image at a time, so memory does not grow with their number.

    Use as a context manager: :meth:`add` hands one :class:`~dfr.prediction.ItemPrediction`
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
                staging = Path(tempfile.mkdtemp(dir=self.out.parent, prefix=f".{self.out.name}."))
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
        _imwrite(self.staging / "heatmaps" / f"{stem}.png", heatmap)
        _imwrite(self.staging / "masks" / f"{stem}.png", item.mask.astype(np.uint8) * 255)
        _imwrite(self.staging / "overlays" / f"{stem}.png", overlay(item.image, heatmap, item.boxes))

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
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".video.", suffix=".mp4")
    os.close(handle)
    writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*"mp4v"), fps, (2 * width, height))
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
        writer.release()
        os.replace(temporary, path)
    except BaseException:
        writer.release()
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


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


def replace_folder(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; an existing ``target`` is moved aside first and removed
    only once ``source`` is in place, so a failure leaves one of the two whole."""
    if not target.exists():
        os.replace(source, target)
        return
    aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.replaced.")) / target.name
    os.replace(target, aside)
    try:
        os.replace(source, target)
    except BaseException:
        os.replace(aside, target)
        aside.parent.rmdir()
        raise
    shutil.rmtree(aside.parent, ignore_errors=True)


def _imwrite(path: Path, picture: np.ndarray) -> None:
    """Encode by ``path``'s suffix and write through Python, which takes any file name the
    system does (OpenCV's own writer needs UTF-8 names)."""
    encoded, data = cv2.imencode(path.suffix, picture)
    if not encoded:
        raise OSError(f"{path}: could not encode the image")
    path.write_bytes(data.tobytes())
