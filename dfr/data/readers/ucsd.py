"""UCSD Anomaly Dataset (Ped1, Ped2) reader.

Layout: ``<root>/Train/TrainNNN/NNN.tif``, ``<root>/Test/TestNNN/NNN.tif``, optional pixel
masks ``<root>/Test/TestNNN_gt/NNN.bmp`` and frame labels in ``<root>/Test/UCSDped1.m`` or
``UCSDped2.m``: one line ``TestVideoFile{end+1}.gt_frame = [60:152];`` per test clip, in
order, with 1-based inclusive ranges (several allowed: ``[5:90, 140:200]``). Frames are sorted
numerically; macOS ``._*`` files, ``.DS_Store`` and other non-image files are ignored.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dfr.data.files import image_files, subfolders
from dfr.data.io import read_image

_GT_LINE = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")


@dataclass
class UCSDDataset:
    """File lists of one UCSD subset; frames are read by ``load_clip`` / ``load_masks``.

    ``frame_labels[i]`` is bool (T_i,), True for an anomalous frame of test clip ``i``, aligned
    with ``test_clips[i]``; ``pixel_masks`` maps a test clip index to its mask files (one per
    frame) for the clips that have a ``_gt`` folder; ``skipped`` lists unreadable frames left
    out (only with ``skip_unreadable=True``), their labels and masks left out with them.
    """

    name: str
    root: Path
    train_clips: list[list[Path]]
    test_clips: list[list[Path]]
    frame_labels: list[np.ndarray]
    pixel_masks: dict[int, list[Path]]
    label_file: Path
    skipped: list[Path] = field(default_factory=list)

    @property
    def test_names(self) -> list[str]:
        """Folder name of each test clip, e.g. ``Test001``."""
        return [clip[0].parent.name for clip in self.test_clips]

    @property
    def pixel_note(self) -> str:
        """One line for reports: which test clips pixel-level metrics cover."""
        names = self.test_names
        covered = sorted(self.pixel_masks)
        if not covered:
            return f"{self.name}: no pixel masks (no TestNNN_gt folders); pixel metrics not available"
        if len(covered) == len(names):
            return f"{self.name}: pixel masks for all {len(names)} test clips"
        listed = ", ".join(names[index] for index in covered)
        return (
            f"{self.name}: pixel masks for {len(covered)} of {len(names)} test clips ({listed}); "
            "pixel metrics are over those clips only"
        )


def parse_label_file(path: str | os.PathLike) -> list[list[tuple[int, int]]]:
    """Frame ranges of each test clip from a ``UCSDpedN.m`` file: 1-based, inclusive.

    ``[60:152]`` gives ``[(60, 152)]``, ``[5:90, 140:200]`` two ranges, ``[61]`` one frame and
    ``[]`` none. Text after ``%`` is a comment.
    """
    path = Path(path)
    entries = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        line = line.split("%", 1)[0]
        if "gt_frame" not in line:
            continue
        match = _GT_LINE.search(line)
        if match is None:
            raise ValueError(f"{path}, line {number}: cannot parse {line.strip()!r} (expected gt_frame = [a:b, ...])")
        ranges = []
        for token in re.split(r"[,\s]+", match.group(1).strip()):
            if not token:
                continue
            bounds = token.split(":")
            if len(bounds) not in (1, 2) or not all(bound.isdigit() for bound in bounds):
                raise ValueError(f"{path}, line {number}: bad frame range {token!r}")
            first, last = int(bounds[0]), int(bounds[-1])
            if first < 1 or last < first:
                raise ValueError(f"{path}, line {number}: bad frame range {token!r} (1-based, first <= last)")
            ranges.append((first, last))
        entries.append(ranges)
    return entries


def ranges_to_labels(ranges: list[tuple[int, int]], n_frames: int) -> np.ndarray:
    """bool (n_frames,) from 1-based inclusive ranges."""
    labels = np.zeros(n_frames, dtype=bool)
    for first, last in ranges:
        if last > n_frames:
            raise ValueError(f"frame range {first}:{last} ends after the clip's {n_frames} frames")
        labels[first - 1 : last] = True
    return labels


def labels_to_ranges(labels: np.ndarray) -> list[tuple[int, int]]:
    """1-based inclusive ranges of the True runs of a bool (T,) array."""
    padded = np.concatenate([[False], np.asarray(labels, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(start) + 1, int(stop)) for start, stop in zip(edges[::2], edges[1::2])]


def read_ucsd(root: str | os.PathLike, *, skip_unreadable: bool = False) -> UCSDDataset:
    """Read a ``UCSDped1`` or ``UCSDped2`` folder (the one holding ``Train`` and ``Test``).

    Every frame is decoded once to find unreadable ones: by default the first is an error
    naming it; with ``skip_unreadable=True`` each is left out with a warning naming it.
    """
    root = Path(root)
    for part in ("Train", "Test"):
        if not (root / part).is_dir():
            raise FileNotFoundError(f"{root / part}: no such folder (give the UCSDped1 or UCSDped2 folder)")
    train_folders = _clip_folders(root / "Train", "Train")
    test_folders = _clip_folders(root / "Test", "Test")
    label_file = _label_file(root)
    entries = parse_label_file(label_file)
    if len(entries) != len(test_folders):
        raise ValueError(f"{label_file}: {len(entries)} label entries but {len(test_folders)} test clips")
    skipped: list[Path] = []
    train_clips = [_readable(_frames(folder), skip_unreadable, skipped)[0] for folder in train_folders]
    test_clips, frame_labels, pixel_masks = [], [], {}
    for index, (folder, ranges) in enumerate(zip(test_folders, entries)):
        frames = _frames(folder)
        try:
            labels = ranges_to_labels(ranges, len(frames))
        except ValueError as error:
            raise ValueError(f"{label_file}: entry {index + 1} ({folder.name}): {error}") from None
        masks = _mask_files(folder, len(frames))
        kept, keep = _readable(frames, skip_unreadable, skipped)
        test_clips.append(kept)
        frame_labels.append(labels[keep])
        if masks is not None:
            pixel_masks[index] = [mask for mask, kept_frame in zip(masks, keep) if kept_frame]
    return UCSDDataset(root.name, root, train_clips, test_clips, frame_labels, pixel_masks, label_file, skipped)


def _clip_folders(folder: Path, prefix: str) -> list[Path]:
    clips = [path for path in subfolders(folder) if re.fullmatch(rf"{prefix}\d+", path.name)]
    if not clips:
        raise ValueError(f"{folder}: no clip folders {prefix}NNN")
    return clips


def _frames(folder: Path) -> list[Path]:
    frames = image_files(folder)
    if not frames:
        raise ValueError(f"{folder}: no frames")
    return frames


def _label_file(root: Path) -> Path:
    test = root / "Test"
    preferred = test / f"{root.name}.m"
    if preferred.is_file():
        return preferred
    found = sorted(path for path in test.glob("*.m") if path.is_file() and not path.name.startswith("."))
    if len(found) != 1:
        listed = ", ".join(path.name for path in found) or "none"
        raise FileNotFoundError(f"{test}: expected one frame label file {root.name}.m, found {listed}")
    return found[0]


def _mask_files(clip: Path, n_frames: int) -> list[Path] | None:
    gt = clip.with_name(f"{clip.name}_gt")
    if not gt.is_dir():
        return None
    masks = image_files(gt)
    if len(masks) != n_frames:
        raise ValueError(f"{gt}: {len(masks)} masks but {n_frames} frames in {clip.name}")
    return masks


def _readable(frames: list[Path], skip: bool, skipped: list[Path]) -> tuple[list[Path], np.ndarray]:
    """The frames that decode, and a bool (T,) array marking them."""
    keep = np.ones(len(frames), dtype=bool)
    for index, frame in enumerate(frames):
        try:
            read_image(frame)
        except ValueError as error:
            if not skip:
                raise ValueError(f"{error}; pass skip_unreadable=True to leave such frames out") from None
            warnings.warn(f"skipping unreadable frame {frame}", stacklevel=3)
            skipped.append(frame)
            keep[index] = False
    if not keep.any():
        raise ValueError(f"{frames[0].parent}: no readable frames")
    return [frame for frame, kept in zip(frames, keep) if kept], keep


def load_clip(frames: list[Path]) -> np.ndarray:
    """Frames as float32 (T, H, W, C) in [0, 1] (channel rule; UCSD frames give C = 1)."""
    return np.stack([read_image(frame) for frame in frames])


def load_masks(masks: list[Path]) -> np.ndarray:
    """Pixel masks as bool (T, H, W), pixels ``> 0``."""
    return np.stack([read_image(mask)[:, :, 0] > 0 for mask in masks])
