"""Frames per second of ``dfr stream`` on a 240x360 video, for a raw-pixel baseline and DFR.

Writes a generated 240x360 MP4 (the pool-like scene of ``dfr demo``: swimming lanes, moving
swimmers in some frames), fits each model on frames of the empty pool (CAE: cpu preset;
DFR: cpu preset on EfficientNet-Lite0 ImageNet features where installed, else VGG19 with
random weights), then streams the video through :func:`dfr.deploy.stream.stream_to_folder` (every
frame, as ``dfr stream`` reads a file) and prints frames per second, with the model file
and with its ONNX export. Targets on a 2-core CPU: at least 25 frames/s for the raw-pixel
baseline, at least 8 for DFR with EfficientNet-Lite0.

    python benchmarks/perf_stream.py
    python benchmarks/perf_stream.py --frames 300 --models cae
"""
from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np

import dfr
from baselines import CAE
from dfr import DFR
from dfr.data.synthetic import write_pool_like
from dfr.deploy.stream import open_source, read_frames, stream_to_folder
from dfr.models.backbones.timm_backbone import (
    OFFLINE_BACKBONE,
    pretrained_offline_available,
)

SIZE = (240, 360)


def _video(root: Path, frames: int) -> tuple[Path, list[np.ndarray]]:
    """An MP4 of ``frames`` pool frames of 240x360 (the scenes repeat) and the empty-pool training frames."""
    data = write_pool_like(root / "pool", seed=0, overwrite=True, size=SIZE)
    busy = [image for image, boxes in zip(data.images, data.boxes) if len(boxes)]
    empty = [image for image, boxes in zip(data.images, data.boxes) if not len(boxes)]
    path = root / "pool.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (SIZE[1], SIZE[0]))
    for index in range(frames):
        writer.write(cv2.cvtColor((busy[index % len(busy)] * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    writer.release()
    return path, empty


def _model(name: str):
    if name == "cae":
        return CAE("cpu", device="cpu")
    backbone = ({"backbone": OFFLINE_BACKBONE, "weights": "imagenet"} if pretrained_offline_available()
                else {"weights": None})
    return DFR("cpu", device="cpu", **backbone)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames in the video (default 200)")
    parser.add_argument("--models", nargs="+", default=["cae", "dfr"], choices=["cae", "dfr"])
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs; video {SIZE[1]}x{SIZE[0]}, {args.frames} frames")
    print(f"{'model':>28s} {'runtime':>11s} {'frames':>6s} {'frames/s':>8s} {'anomalous':>9s}")
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        video, train = _video(root, args.frames)
        for name in args.models:
            model = _model(name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(train)
            label = type(model).__name__ + (f" {model.backbone}" if name == "dfr" else " cpu preset")
            for runtime, runner in (("torch", model), ("onnxruntime", dfr.load(model.export_onnx(root / f"{name}.onnx")))):
                capture, live = open_source(str(video))
                summary = stream_to_folder(runner, read_frames(capture, live=live), root / f"out-{name}-{runtime}",
                                           fps=25.0, progress=None)
                capture.release()
                print(f"{label:>28s} {runtime:>11s} {summary['frames']:6d} {summary['frames_per_second']:8.1f} "
                      f"{summary['anomalous']:9d}", flush=True)


if __name__ == "__main__":
    main()
