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

from baselines._common import PixelModel, resize, to_gray
from dfr.io import list_images, load_images
from dfr.scoring import ScoringSettings

WINDOW_BATCH = 8


def read_clips(data: Any) -> list[np.ndarray]:
    """Every clip in ``data`` as float32 (T, H, W) gray in [0, 1].

    ``data``: a folder of frames (naturally sorted), a list of such folders, one array
    (T, H, W) or (T, H, W, C), or a list of such arrays.
    """
    if isinstance(data, (str, os.PathLike)):
        return [_folder_clip(Path(data))]
    if isinstance(data, np.ndarray):
        return [_array_clip(data, 0)]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if len(data) == 0:
            raise ValueError("got an empty list of clips")
        if all(isinstance(item, (str, os.PathLike)) for item in data):
            return [_folder_clip(Path(item)) for item in data]
        if all(isinstance(item, np.ndarray) for item in data):
            return [_array_clip(item, index) for index, item in enumerate(data)]
        raise TypeError("a list of clips must hold only folders or only arrays (T, H, W[, C])")
    raise TypeError(f"cannot read clips from {type(data).__name__}: give a folder of frames, folders or arrays")


def _folder_clip(folder: Path) -> np.ndarray:
    return _gray_clip(_folder_frames(folder), str(folder))


def _array_clip(array: np.ndarray, index: int) -> np.ndarray:
    return _gray_clip(_array_frames(array, index), f"clip {index}")


def _clip_frames(clip: Any, index: int) -> tuple[list[np.ndarray], str]:
    """One clip's frames by the channel rule (colour kept), and its name: the folder's, or ``clip_<index>``."""
    if isinstance(clip, (str, os.PathLike)):
        return _folder_frames(Path(clip)), Path(clip).name
    if isinstance(clip, np.ndarray):
        return _array_frames(clip, index), f"clip_{index}"
    raise TypeError(f"cannot read a clip from {type(clip).__name__}: give a folder of frames or an array")


def _folder_frames(folder: Path) -> list[np.ndarray]:
    if not folder.is_dir():
        raise ValueError(f"{folder}: a clip must be a folder of frames (extract the frames of a video file first)")
    return load_images(list_images(folder))[0]


def _array_frames(array: np.ndarray, index: int) -> list[np.ndarray]:
    if array.ndim not in (3, 4) or (array.ndim == 3 and array.shape[2] <= 4):
        raise ValueError(f"clip {index}: expected an array (T, H, W) or (T, H, W, C), got shape {array.shape}; "
                         "a single frame is a clip of one frame: pass frame[None]")
    if len(array) == 0:
        raise ValueError(f"clip {index} has no frames")
    try:
        return load_images(list(array))[0]
    except ValueError as error:
        raise ValueError(f"clip {index}: {error}") from None


def _gray_clip(frames: list[np.ndarray], name: str) -> np.ndarray:
    shapes = {frame.shape[:2] for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"{name}: frames differ in size ({sorted(shapes)}); all frames of a clip must share one size")
    return np.stack([to_gray(frame) for frame in frames])


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
        return [self._clip_outputs(clip)[1] for clip in self._read(data)]

    def regularity(self, data: Any) -> list[np.ndarray]:
        """Per clip, the source's regularity ``1 - (e - min e) / max e`` of the frame scores e.

        Uses the clip's own minimum and maximum (test statistics), as the source did.
        """
        from dfr.metrics import regularity_score

        return [regularity_score(errors) for errors in self.clip_scores(data)]

    # ----------------------------------------------------------------- hooks

    def _read(self, data: Any) -> list[np.ndarray]:
        return read_clips(data)

    def _batches(self, data: Any, region_masks: Any, batch_size: int) -> Iterator[tuple[list[str], list, Any, list]]:
        """One clip at a time (a clip's windows need all its frames); frames are named
        ``<clip folder>_<frame index>``, or ``clip_<i>_<frame index>`` for arrays."""
        if region_masks is not None:
            raise ValueError(f"{type(self).__name__} takes no region masks (they are for image models)")
        clips = [data] if isinstance(data, (str, os.PathLike, np.ndarray)) else list(data)
        for index, clip in enumerate(clips):
            frames, name = _clip_frames(clip, index)
            yield [f"{name}_{t:05d}" for t in range(len(frames))], [_gray_clip(frames, name)], None, frames

    def _scores(self, maps: "FrameMaps", settings: ScoringSettings | None = None) -> np.ndarray:
        """Frame scores: each frame's summed squared reconstruction error."""
        return maps.scores

    def _split(self, clips: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if len(clips) >= 2:
            return super()._split(clips)
        clip = clips[0]
        held = max(1, round(self.scoring.validation_fraction * len(clip)))
        if len(clip) - held < self.window:
            raise ValueError(
                f"one training clip of {len(clip)} frames: after holding out its last {held} frames for the "
                f"threshold, fewer than window={self.window} remain; pass more frames, more clips or validation="
            )
        return [clip[:-held]], [clip[-held:]]

    def _fit(self, clips: list[np.ndarray]) -> None:
        settings = self._validate()
        frames = [self._inputs(clip) for clip in clips]
        windows = self._training_windows([len(clip) for clip in clips])
        per_epoch = settings["windows_per_epoch"] or len(windows)
        with self._seeded() as rng:
            self.network_ = self._network().to(self.device_)

            def epoch() -> Iterator[tuple[torch.Tensor]]:
                chosen = rng.permutation(len(windows))[:per_epoch]
                for start in range(0, len(chosen), settings["batch_size"]):
                    rows = windows[chosen[start:start + settings["batch_size"]]]
                    if len(rows) > 1:  # batch normalisation needs two samples
                        yield (torch.stack([frames[c][t:t + s * self.window:s] for c, t, s in rows]).to(self.device_),)

            self._train(epoch, lambda batch: F.mse_loss(self.network_(batch), batch), settings)

    def _maps(self, clips: list[np.ndarray]) -> FrameMaps:
        maps, scores = FrameMaps(), []
        for clip in clips:
            clip_maps, clip_scores = self._clip_outputs(clip)
            maps.extend(clip_maps)
            scores.append(clip_scores)
        maps.scores = np.concatenate(scores)
        return maps

    def _fit_scoring(self, normal_maps: FrameMaps, regions: list[np.ndarray] | None = None) -> None:
        super()._fit_scoring(normal_maps, regions)
        self.score_stats_.update({
            "frame_score_mean": float(normal_maps.scores.mean()),
            "frame_score_std": float(normal_maps.scores.std()),
            "frame_score_max": float(normal_maps.scores.max()),
        })

    # ----------------------------------------------------------------- helpers

    def _inputs(self, clip: np.ndarray) -> torch.Tensor:
        """(T, H, W) frames → (T, S, S) float32 network input on CPU."""
        size = self.settings()["image_size"]
        return torch.from_numpy(np.stack([resize(frame, size, size) for frame in clip]))

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

    @torch.no_grad()
    def _clip_outputs(self, clip: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """One clip (T, H, W) → T maps float32 (H, W) and T scores float64, in frame order."""
        self.network_.eval()
        length, (height, width) = len(clip), clip.shape[1:]
        frames = self._inputs(clip)
        if length < self.window:
            frames = frames[torch.from_numpy(mirror_indices(length, self.window))]
        starts = window_starts(len(frames), self.window, self.test_hop)
        errors = torch.zeros(frames.shape, dtype=torch.float64)
        counts = torch.zeros(len(frames), dtype=torch.float64)
        for first in range(0, len(starts), WINDOW_BATCH):
            chosen = starts[first:first + WINDOW_BATCH]
            batch = torch.stack([frames[t:t + self.window] for t in chosen]).to(self.device_)
            squared = (self.network_(batch) - batch).pow_(2).double().cpu()
            for t, error in zip(chosen, squared):
                errors[t:t + self.window] += error
                counts[t:t + self.window] += 1
        errors = (errors[:length] / counts[:length, None, None]).float().numpy()
        return [resize(error, height, width) for error in errors], errors.reshape(length, -1).sum(1, dtype=np.float64)
