"""UCSD-style clips: a static scene with small blobs walking at about 1 px per frame.

Normal clips hold a few small bright or dark elliptical "pedestrians" crossing a walkway at
1 px/frame (they leave at one side and come back at the other). Each test clip has one or two
anomalous episodes: an object of pedestrian size moving at 5 px/frame (``fast``, 5x the normal
speed) or one three times the pedestrian's height and width moving at 1 px/frame (``large``).
The pixel masks are the anomalous object's pixels per frame, and the frame labels are exactly
the frames whose mask is not empty. Written in the UCSD layout with 8-bit gray TIFF frames,
``.bmp`` masks, a ``.m`` label file and some macOS junk files to exercise the reader.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dfr.data.files import prepare_folder, to_uint8, write_image
from dfr.data.readers.ucsd import labels_to_ranges

NORMAL_SPEED = 1.0  # px per frame
FAST_SPEED = 5.0  # px per frame, anomaly "fast"
LARGE_FACTOR = 3.0  # height and width factor, anomaly "large"
KINDS = ("fast", "large")
_JUNK = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        "  # AppleDouble header, not an image


@dataclass
class SyntheticUCSD:
    """What ``write_ucsd_like`` wrote, for checking a reader against.

    ``train`` and ``test``: uint8 (T, H, W) per clip; ``frame_labels``: bool (T,) per test
    clip; ``masks``: bool (T, H, W) per test clip (also for clips whose ``_gt`` folder was not
    written); ``gt_clips``: indices of the test clips with a ``_gt`` folder; ``anomalies``:
    per test clip the kind of each episode, in time order.
    """

    root: Path
    train: list[np.ndarray]
    test: list[np.ndarray]
    frame_labels: list[np.ndarray]
    masks: list[np.ndarray]
    gt_clips: list[int]
    anomalies: list[list[str]]


def write_ucsd_like(
    root: str | os.PathLike,
    name: str = "UCSDped2",
    *,
    n_train_clips: int = 4,
    n_test_clips: int = 4,
    frames: int = 40,
    size: tuple[int, int] = (120, 160),
    seed: int = 0,
    overwrite: bool = False,
) -> SyntheticUCSD:
    """Write ``root/<name>/{Train,Test}`` with ``frames`` frames of ``size`` (H, W) per clip.

    A name containing ``ped1`` (any case) writes ``_gt`` folders for every other test clip
    only (as UCSD Ped1 has them for some clips); otherwise all test clips get one.
    """
    if frames < 12:
        raise ValueError(f"frames must be at least 12, got {frames}")
    height, width = size
    if height < 48 or width < 64:
        raise ValueError(f"size must be at least (48, 64), got {size}")
    folder = prepare_folder(Path(root) / name, overwrite)
    rng = np.random.default_rng(seed)
    background = _background(height, width, rng)
    train = []
    for index in range(n_train_clips):
        clip, _ = _clip(background, frames, rng, episodes=[])
        train.append(clip)
        _write_frames(folder / "Train" / f"Train{index + 1:03d}", clip)
    test, labels, masks, anomalies = [], [], [], []
    every_other = "ped1" in name.lower()
    gt_clips = [index for index in range(n_test_clips) if not every_other or index % 2 == 0]
    n_episodes = 0
    for index in range(n_test_clips):
        count = 1 if frames < 24 else 1 + index % 2
        kinds = [KINDS[(n_episodes + k) % len(KINDS)] for k in range(count)]
        n_episodes += count
        clip, mask = _clip(background, frames, rng, episodes=kinds)
        test.append(clip)
        masks.append(mask)
        labels.append(mask.any(axis=(1, 2)))
        anomalies.append(kinds)
        clip_folder = folder / "Test" / f"Test{index + 1:03d}"
        _write_frames(clip_folder, clip)
        if index in gt_clips:
            gt_folder = clip_folder.with_name(f"{clip_folder.name}_gt")
            for t, frame_mask in enumerate(mask):
                write_image(gt_folder / f"{t + 1:03d}.bmp", frame_mask.astype(np.uint8) * 255)
    _write_label_file(folder / "Test" / f"{name}.m", labels)
    for junk in (folder / ".DS_Store", folder / "Train" / ".DS_Store", folder / "Test" / ".DS_Store",
                 folder / "Test" / f"._{name}.m"):
        junk.write_bytes(_JUNK)
    return SyntheticUCSD(folder, train, test, labels, masks, gt_clips, anomalies)


def _background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Static scene, float32 (H, W): textured ground, a lighter walkway band, a few dark fixtures."""
    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)).astype(np.float32), (0, 0), 3.0)
    scene = 0.42 + 0.05 * noise / (noise.std() + 1e-6)
    scene[int(0.2 * height) : int(0.85 * height)] += 0.1
    for _ in range(3):
        x, y = int(rng.integers(0, width - 12)), int(rng.integers(2, int(0.2 * height) - 5))
        scene[y : y + 4, x : x + 12] = 0.25
    return scene


def _ellipse(shape: tuple[int, int], x: float, y: float, rx: float, ry: float) -> np.ndarray:
    """bool (H, W): pixels whose centres lie inside the axis-aligned ellipse."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return ((cols - x) / rx) ** 2 + ((rows - y) / ry) ** 2 <= 1.0


def _clip(
    background: np.ndarray, frames: int, rng: np.random.Generator, episodes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """One clip, uint8 (T, H, W), and the anomalous objects' pixels, bool (T, H, W)."""
    height, width = background.shape
    ry = height / 30.0
    rx = 0.6 * ry
    top, bottom = 0.2 * height + ry, 0.85 * height - ry
    walkers = []
    for _ in range(int(rng.integers(3, 6))):
        direction = rng.choice([-1.0, 1.0])
        angle = rng.uniform(-0.3, 0.3)
        walkers.append({
            "x": rng.uniform(0, width), "y": rng.uniform(top, bottom),
            "vx": direction * NORMAL_SPEED * np.cos(angle), "vy": NORMAL_SPEED * np.sin(angle),
            "level": rng.choice([rng.uniform(0.05, 0.15), rng.uniform(0.85, 0.95)]),
        })
    tracks = [_episode(kind, segment, frames, len(episodes), height, width, rx, ry, rng)
              for segment, kind in enumerate(episodes)]
    video = np.empty((frames, height, width), np.uint8)
    masks = np.zeros((frames, height, width), bool)
    span = width + 4 * rx
    for t in range(frames):
        frame = background.copy()
        for walker in walkers:
            x = (walker["x"] + 2 * rx) % span - 2 * rx
            frame[_ellipse(frame.shape, x, walker["y"], rx, ry)] = walker["level"]
            walker["x"] += walker["vx"]
            walker["y"] += walker["vy"]
            if not top <= walker["y"] <= bottom:
                walker["vy"] = -walker["vy"]
        for track in tracks:
            if track["start"] <= t < track["stop"]:
                step = t - track["start"]
                pixels = _ellipse(frame.shape, track["x"] + step * track["vx"], track["y"], track["rx"], track["ry"])
                frame[pixels] = track["level"]
                masks[t] |= pixels
        video[t] = to_uint8(frame + rng.normal(0.0, 0.01, frame.shape))
    return video, masks


def _episode(
    kind: str, segment: int, frames: int, n_segments: int, height: int, width: int,
    rx: float, ry: float, rng: np.random.Generator,
) -> dict:
    """Start/stop frame, path and look of one anomalous object inside its share of the clip."""
    seg_start, seg_stop = segment * frames // n_segments, (segment + 1) * frames // n_segments
    if kind == "fast":
        speed, obj_rx, obj_ry = FAST_SPEED, rx, ry
    else:
        speed, obj_rx, obj_ry = NORMAL_SPEED, LARGE_FACTOR * rx, LARGE_FACTOR * ry
    longest = int((width - 2 * obj_rx) // speed)  # frames it can stay fully in view
    duration = int(min(rng.integers(8, 15), seg_stop - seg_start - 2, longest))
    start = seg_start + 1 + int(rng.integers(0, seg_stop - seg_start - 1 - duration))
    direction = rng.choice([-1.0, 1.0])
    travel = speed * (duration - 1)
    x_min = obj_rx + (travel if direction < 0 else 0.0)
    x_max = width - 1 - obj_rx - (travel if direction > 0 else 0.0)
    return {
        "start": start, "stop": start + duration,
        "x": rng.uniform(x_min, x_max), "y": rng.uniform(0.2 * height + obj_ry / 2, 0.85 * height - obj_ry / 2),
        "vx": direction * speed, "rx": obj_rx, "ry": obj_ry,
        "level": rng.choice([rng.uniform(0.05, 0.15), rng.uniform(0.85, 0.95)]),
    }


def _write_frames(folder: Path, clip: np.ndarray) -> None:
    for t, frame in enumerate(clip):
        write_image(folder / f"{t + 1:03d}.tif", frame)
    (folder / "._001.tif").write_bytes(_JUNK)


def _write_label_file(path: Path, labels: list[np.ndarray]) -> None:
    lines = ["TestVideoFile = {};"]
    for clip_labels in labels:
        ranges = ", ".join(f"{first}:{last}" for first, last in labels_to_ranges(clip_labels))
        lines.append(f"TestVideoFile{{end+1}}.gt_frame = [{ranges}];")
    path.write_text("\n".join(lines) + "\n")
