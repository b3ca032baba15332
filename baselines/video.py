"""Clip models: training windows, one map and one score per input frame.

A clip is a folder of frames, or an array (T, H, W[, C]); ``data`` is one clip or a list of
them (list of folders or list of arrays). Frames follow the channel rule of :mod:`dfr.data.io`
and are then converted to gray. Outputs of all clips are concatenated in input order: frame
``t`` of clip ``k`` is output ``sum(len(clip) for clip in clips[:k]) + t``.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from baselines._common import PixelModel, ReconstructionError, reconstruction_loss
from dfr import distributed
from dfr.api import params
from dfr.data.clips import ClipDataset, gray_clip
from dfr.data.io import resize_image, to_gray
from dfr.scoring import ScoringSettings

WINDOW_BATCH = 8


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

    Args:
        preset: the name of an entry of the subclass's ``PRESETS``; arguments left as ``None``
            take the preset's value (:meth:`settings`).
        window: frames per window T (10 in the source).
        strides: frame strides of the training windows (1, 2, 3, 4: the source's augmentation).
        test_hop: frames between the starts of prediction windows (1: every window).
        image_size: side S of the square network input.
        windows_per_epoch: random training windows per epoch (``None``: all of them).
        epochs, batch_size, learning_rate: Adam on the mean squared error of the windows.
        common: ``scoring``, ``seed``, ``device``; see :class:`dfr.AnomalyModel`.
    """

    input_kind = "clips"
    takes_region_masks = False
    output_layout = "NTHW"

    datasets = ("ucsd",)
    PARAMETERS = {
        "window": params.positive_int,
        "strides": params.sequence_of(params.positive_int),
        "test_hop": params.positive_int,
        "batch_size": params.at_least(2),  # batch normalisation
        "windows_per_epoch": params.one_of(params.positive_int, None),
    }
    CONSTRAINTS = (params.Constraint(("test_hop", "window"), lambda hop, window: hop <= window,
                                     "test_hop must lie in 1 … window so that windows cover every frame"),)

    def __init__(
        self,
        preset: str = "source",
        *,
        window: int = 10,
        strides: Sequence[int] = (1, 2, 3, 4),
        test_hop: int = 1,
        image_size: int | None = None,
        windows_per_epoch: int | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.preset = preset
        self.window = window
        self.strides = tuple(strides)
        self.test_hop = test_hop
        self.image_size = image_size
        self.windows_per_epoch = windows_per_epoch
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate

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
        settings = self.settings()
        with distributed.together():
            windows = _Windows(self, clips, self._training_windows(clips.lengths()))
        per_epoch = settings["windows_per_epoch"] and min(settings["windows_per_epoch"], distributed.total(len(windows)))
        with self._seeded():
            self.network_ = self._network().to(self.device_)
            self._train(windows, reconstruction_loss, settings, samples_per_epoch=per_epoch)

    def _fit_scoring(self, held_out: ClipDataset) -> None:
        super()._fit_scoring(held_out)
        self.score_stats_.update({f"frame_score_{name}": self.score_stats_[f"image_score_{name}"]
                                  for name in ("mean", "std", "max")})

    # ----------------------------------------------------------------- helpers

    def _inputs(self, frames: np.ndarray | list[np.ndarray]) -> torch.Tensor:
        """(T, H, W) gray or T (H, W, C) frames → (T, S, S) float32 network input on CPU."""
        size = self.settings()["image_size"]
        return torch.from_numpy(np.stack([resize_image(frame if frame.ndim == 2 else to_gray(frame), size, size)
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

    def input_spec(self) -> dict[str, Any]:
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
        maps = FrameMaps([resize_image(error, *frames[-1].shape[:2])])
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
        return [resize_image(error, height, width) for error in errors], errors.reshape(length, -1).sum(1, dtype=np.float64)


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
