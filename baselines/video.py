"""Clip models: reading clips, training windows, one map and one score per input frame.

A clip is a folder of frames, or an array (T, H, W[, C]); ``data`` is one clip or a list of
them (list of folders or list of arrays). Frames follow the channel rule of :mod:`dfr.io`
and are then converted to gray. Outputs of all clips are concatenated in input order: frame
``t`` of clip ``k`` is output ``sum(len(clip) for clip in clips[:k]) + t``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from baselines._common import PixelModel, ReconstructionError, resize, to_gray
from dfr import distributed
from dfr.io import decode_source, list_images
from dfr.scoring import ScoringSettings

WINDOW_BATCH = 8


class ClipDataset(Dataset):
    """Clips whose frames are read on access.

    ``data``: a folder of frames (naturally sorted), a list of such folders, one array
    (T, H, W) or (T, H, W, C), or a list of such arrays. Item ``i`` is clip ``i`` as float32
    (T, H, W) gray in [0, 1]; :meth:`window` reads only some of its frames.
    """

    def __init__(self, data: Any) -> None:
        if isinstance(data, (str, os.PathLike, np.ndarray)):
            data = [data]
        if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
            raise TypeError(f"cannot read clips from {type(data).__name__}: give a folder of frames, folders or arrays")
        if len(data) == 0:
            raise ValueError("got an empty list of clips")
        if not (all(isinstance(item, (str, os.PathLike)) for item in data)
                or all(isinstance(item, np.ndarray) for item in data)):
            raise TypeError("a list of clips must hold only folders or only arrays (T, H, W[, C])")
        self.sources = [_clip_sources(clip, index) for index, clip in enumerate(data)]
        self.names = [Path(clip).name if isinstance(clip, (str, os.PathLike)) else f"clip_{index}"
                      for index, clip in enumerate(data)]
        self.labels = [os.fspath(clip) if isinstance(clip, (str, os.PathLike)) else f"clip {index}"
                       for index, clip in enumerate(data)]

    has_regions = False

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> np.ndarray:
        if not -len(self) <= index < len(self):
            raise IndexError(f"clip {index} of {len(self)}")
        return gray_clip(self.frames(index), self.labels[index])

    def lengths(self) -> list[int]:
        return [len(sources) for sources in self.sources]

    def frames(self, index: int, which: Sequence[int] | None = None) -> list[np.ndarray]:
        """Frames ``which`` (default: all) of clip ``index`` by the channel rule, colour kept."""
        sources = self.sources[index]
        chosen = range(len(sources)) if which is None else which
        try:
            return [decode_source(sources[t], f"frame_{t}") for t in chosen]
        except ValueError as error:
            raise ValueError(f"{self.labels[index]}: {error}") from None

    def size(self, index: int) -> tuple[int, int]:
        return self.frames(index, [0])[0].shape[:2]

    def subset(self, indices: Sequence[int]) -> "ClipDataset":
        return self._with([(self.sources[i], self.names[i], self.labels[i]) for i in indices])

    def frame_range(self, index: int, start: int, stop: int) -> "ClipDataset":
        """Clip ``index`` cut to its frames ``start:stop``, as a dataset of one clip."""
        return self._with([(self.sources[index][start:stop], self.names[index], self.labels[index])])

    def with_pairs(self, pairs: bool) -> "ClipDataset":
        return self

    def _with(self, clips: list[tuple[list, str, str]]) -> "ClipDataset":
        subset = object.__new__(ClipDataset)
        subset.sources, subset.names, subset.labels = ([clip[part] for clip in clips] for part in range(3))
        return subset


def gray_clip(frames: list[np.ndarray], label: str) -> np.ndarray:
    """A clip's frames (H, W, C) as one float32 (T, H, W) gray array; frames must share a size."""
    shapes = {frame.shape[:2] for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"{label}: frames differ in size ({sorted(shapes)}); all frames of a clip must share one size")
    return np.stack([to_gray(frame) for frame in frames])


def _clip_sources(clip: Any, index: int) -> list:
    """One clip's frames unread: the folder's image paths, or the array's frames."""
    if isinstance(clip, (str, os.PathLike)):
        folder = Path(clip)
        if not folder.is_dir():
            raise ValueError(f"{folder}: a clip must be a folder of frames (extract the frames of a video file first)")
        return list_images(folder)
    if clip.ndim not in (3, 4) or (clip.ndim == 3 and clip.shape[2] <= 4):
        raise ValueError(f"clip {index}: expected an array (T, H, W) or (T, H, W, C), got shape {clip.shape}; "
                         "a single frame is a clip of one frame: pass frame[None]")
    if len(clip) == 0:
        raise ValueError(f"clip {index} has no frames")
    return list(clip)


def mirror_indices(length: int, total: int) -> np.ndarray:
    """Frame indices 0, 1, …, length-1, length-2, …, 1, 0, 1, … (``total`` of them).

    Extends a clip shorter than a window by playing it back and forth, which keeps the
    speed of motion; a one-frame clip is repeated.
    """
    if length == 1:
        return np.zeros(total, dtype=np.int64)
    period = 2 * (length - 1)
    phase = np.arange(total) % period
    return np.where(phase < length, phase, period - phase)


def window_starts(length: int, window: int, hop: int) -> list[int]:
    """Starts of stride-1 windows every ``hop`` frames; the last window ends at the last frame."""
    starts = list(range(0, length - window + 1, hop))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


class FrameMaps(list):
    """Per-frame maps (a list of float32 (H, W)) that also carry per-frame ``scores`` (N,)."""

    scores: np.ndarray


class ClipModel(PixelModel):
    """Base of the video baselines: windows of ``window`` frames in, the same frames out.

    Training windows: ``window`` frames taken every ``s`` frames, for each stride ``s`` in
    ``strides`` (1, 2, 3, 4 by default: the source's augmentation), at every start position
    of every training clip (a random ``windows_per_epoch`` of them per epoch when set).

    Prediction: every input frame gets exactly one map and one score. Windows of ``window``
    consecutive frames start every ``test_hop`` frames, and one more ends at the clip's last
    frame; a frame's map is the mean over the windows containing it of its squared
    reconstruction error ``(x - x̂)²`` at network resolution, resized to the frame's own size.
    Edge frames are covered by fewer windows: with ``test_hop=1``, frame ``t`` of an n-frame
    clip by ``min(t + 1, n - t, window, n - window + 1)``, the first and last frame by one.
    A clip shorter than ``window`` is played back and forth (frames 0 … n-1, n-2 … 0, 1 …)
    to fill one window, and only its n real frames are returned. The frame score is the summed error of the frame: the sum of that
    mean squared error over the S x S network pixels (per-frame L2 cost of the source).
    ``dfr.metrics.regularity_score`` turns one clip's scores into the source's regularity
    (see :meth:`regularity`).

    Threshold: held out from ``fit``'s data are whole clips (a seeded ``validation_fraction``
    of them, at least one) when there are two clips or more, and the last
    ``validation_fraction`` of the frames when there is one clip.
    """

    input_kind = "clips"
    takes_region_masks = False
    _output_layout = "NTHW"

    def __init__(
        self,
        *,
        window: int,
        strides: Sequence[int],
        test_hop: int,
        scoring: ScoringSettings | dict[str, Any] | None,
        seed: int,
        device: str,
    ) -> None:
        super().__init__(scoring=scoring, seed=seed, device=device)
        self.window = window
        self.strides = tuple(int(stride) for stride in strides)
        self.test_hop = test_hop

    def _validate(self) -> dict[str, Any]:
        settings = self.settings()
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        if not self.strides or min(self.strides) < 1:
            raise ValueError(f"strides must be positive integers, got {self.strides}")
        if settings["batch_size"] < 2:
            raise ValueError(f"batch_size must be at least 2 (batch normalisation), got {settings['batch_size']}")
        if not 1 <= self.test_hop <= self.window:
            raise ValueError(f"test_hop must lie in 1 … window={self.window} so that windows cover every frame, "
                             f"got {self.test_hop}")
        return settings

    # ----------------------------------------------------------------- public API

    def clip_scores(self, data: Any) -> list[np.ndarray]:
        """Per clip, the frame scores (summed squared reconstruction error), float64 (T,)."""
        self._check_fitted()
        return [self._clip_outputs(clip)[1] for clip in self._dataset(data)]

    def regularity(self, data: Any) -> list[np.ndarray]:
        """Per clip, the source's regularity ``1 - (e - min e) / max e`` of the frame scores e.

        Uses the clip's own minimum and maximum (test statistics), as the source did.
        """
        from dfr.metrics import regularity_score

        return [regularity_score(errors) for errors in self.clip_scores(data)]

    # ----------------------------------------------------------------- hooks

    def _dataset(self, data: Any, region_masks: Any = None) -> ClipDataset:
        if region_masks is not None:
            raise ValueError(f"{type(self).__name__} takes no region masks (they are for image models)")
        return ClipDataset(data)

    def _batches(self, data: Any, region_masks: Any, batch_size: int) -> Iterator[tuple[list[str], list, Any, list]]:
        """One clip at a time (a clip's windows need all its frames); frames are named
        ``<clip folder>_<frame index>``, or ``clip_<i>_<frame index>`` for arrays."""
        clips = self._dataset(data, region_masks)
        for index, name in enumerate(clips.names):
            frames = clips.frames(index)
            yield [f"{name}_{t:05d}" for t in range(len(frames))], [gray_clip(frames, clips.labels[index])], None, frames

    def _map_chunks(self, clips: ClipDataset) -> Iterator[tuple["FrameMaps", None]]:
        """One clip's post-processed maps (with their frame scores) at a time."""
        for clip in clips:
            maps = FrameMaps()
            clip_maps, maps.scores = self._clip_outputs(clip)
            maps.extend(clip_maps)
            yield self._postprocess(maps), None

    def _predict_maps(self, data: Any, region_masks: Any = None) -> tuple["FrameMaps", None]:
        self._check_fitted()
        maps = FrameMaps()
        parts = [part for part, _ in self._map_chunks(self._dataset(data, region_masks))]
        maps.extend(m for part in parts for m in part)
        maps.scores = np.concatenate([part.scores for part in parts])
        return maps, None

    def _scores(self, maps: "FrameMaps", settings: ScoringSettings | None = None) -> np.ndarray:
        """Frame scores: each frame's summed squared reconstruction error."""
        return maps.scores

    def _split(self, clips: ClipDataset) -> tuple[ClipDataset, ClipDataset]:
        if len(clips) >= 2:
            return super()._split(clips)
        length = clips.lengths()[0]
        held = max(1, round(self.scoring.validation_fraction * length))
        if length - held < self.window:
            raise ValueError(
                f"one training clip of {length} frames: after holding out its last {held} frames for the "
                f"threshold, fewer than window={self.window} remain; pass more frames, more clips or validation="
            )
        return clips.frame_range(0, 0, length - held), clips.frame_range(0, length - held, length)

    def _fit(self, clips: ClipDataset) -> None:
        settings = self._validate()
        with distributed.together():
            windows = _Windows(self, clips, self._training_windows(clips.lengths()))
        per_epoch = settings["windows_per_epoch"] and min(settings["windows_per_epoch"], distributed.total(len(windows)))
        with self._seeded():
            self.network_ = self._network().to(self.device_)
            self._train(windows, lambda batch: F.mse_loss(self.network_(batch), batch), settings,
                        samples_per_epoch=per_epoch)

    def _fit_scoring(self, held_out: ClipDataset) -> None:
        super()._fit_scoring(held_out)
        self.score_stats_.update({f"frame_score_{name}": self.score_stats_[f"image_score_{name}"]
                                  for name in ("mean", "std", "max")})

    # ----------------------------------------------------------------- helpers

    def _inputs(self, frames: np.ndarray | list[np.ndarray]) -> torch.Tensor:
        """(T, H, W) gray or T (H, W, C) frames → (T, S, S) float32 network input on CPU."""
        size = self.settings()["image_size"]
        return torch.from_numpy(np.stack([resize(frame if frame.ndim == 2 else to_gray(frame), size, size)
                                          for frame in frames]))

    def _training_windows(self, lengths: list[int]) -> np.ndarray:
        """(n, 3) int rows ``clip, first frame, stride`` of every training window."""
        rows = [
            (clip, start, stride)
            for clip, length in enumerate(lengths)
            for stride in self.strides
            for start in range(length - (self.window - 1) * stride)
        ]
        if len(rows) < 2:
            raise ValueError(f"the training clips (lengths {lengths}) give {len(rows)} windows of window={self.window} "
                             "frames; at least 2 are needed")
        return np.array(rows, dtype=np.int64)

    def _inference_network(self) -> ReconstructionError:
        return ReconstructionError(self.network_, power=2)

    def _input_spec(self) -> dict[str, Any]:
        size = self.settings()["image_size"]
        return {"shape": [None, self.window, size, size], "layout": "NTHW", "channels": "gray", "range": [0.0, 1.0],
                "normalisation": None, "resize": "bilinear to the network size",
                "windows": f"{self.window} consecutive frames starting every {self.test_hop} frames"}

    @property
    def _stream_history(self) -> int:
        return self.window

    def _stream_maps(self, frames: list[np.ndarray]) -> "FrameMaps":
        """Causal map and score of the newest of ``frames``: the squared error of the last frame
        of the window of the newest ``window`` frames (at the start of a stream, the frames so
        far played back and forth, the newest last)."""
        inputs = self._inputs(gray_clip(frames, "stream"))
        order = (len(inputs) - 1 - mirror_indices(len(inputs), self.window))[::-1].copy()
        error = self._run_network(inputs[torch.from_numpy(order)][None])[0, -1].numpy()
        maps = FrameMaps([resize(error, *frames[-1].shape[:2])])
        maps.scores = np.array([error.sum(dtype=np.float64)])
        return self._postprocess(maps)

    def _clip_outputs(self, clip: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """One clip (T, H, W) → T maps float32 (H, W) and T scores float64, in frame order."""
        length, (height, width) = len(clip), clip.shape[1:]
        frames = self._inputs(clip).numpy()
        if length < self.window:
            frames = frames[mirror_indices(length, self.window)]
        starts = window_starts(len(frames), self.window, self.test_hop)
        # numpy between the network runs: torch's worker threads would keep spinning after
        # each small op and slow down an onnxruntime session sharing the cores
        errors = np.zeros(frames.shape, dtype=np.float64)
        counts = np.zeros(len(frames), dtype=np.float64)
        for first in range(0, len(starts), WINDOW_BATCH):
            chosen = starts[first:first + WINDOW_BATCH]
            batch = np.stack([frames[t:t + self.window] for t in chosen])
            for t, error in zip(chosen, self._run_network(torch.from_numpy(batch)).numpy()):
                errors[t:t + self.window] += error
                counts[t:t + self.window] += 1
        errors = (errors[:length] / counts[:length, None, None]).astype(np.float32)
        return [resize(error, height, width) for error in errors], errors.reshape(length, -1).sum(1, dtype=np.float64)


class _Windows(Dataset):
    """Training windows: row ``(clip, first frame, stride)`` → network input (T, S, S), only
    the window's frames read."""

    def __init__(self, model: ClipModel, clips: ClipDataset, rows: np.ndarray) -> None:
        self.model, self.clips, self.rows = model, clips, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        clip, first, stride = (int(value) for value in self.rows[index])
        frames = range(first, first + stride * self.model.window, stride)
        return self.model._inputs(self.clips.frames(clip, frames))
