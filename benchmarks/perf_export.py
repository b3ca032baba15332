"""Prediction speed on the CPU with torch against onnxruntime, for every model kind, in one run.

Fits each model kind (cpu preset; the raw-pixel autoencoders for 2 epochs only, since speed
does not depend on training length) on generated data, exports it to ONNX and times
``predict`` of the same test inputs with the model file's torch network and with the
exported graph in onnxruntime; pre- and post-processing (resizing, smoothing, masks, boxes)
are the same code in both. Prints images (video: frames) per second for each, their ratio
and the largest map difference as a fraction of the model's normal q99 pixel.

Image models: 12 training and 16 test crops of 256² of the brick texture (DFR and the
feature heads on EfficientNet-Lite0 with ImageNet weights where installed, else VGG19 with
random weights). Video models: the UCSD-like clips of ``dfr demo`` (2 training clips, 1
test clip of 40 frames, 120x160). Each timing is the best of ``--repeats`` alternating runs.

    python benchmarks/perf_export.py
    python benchmarks/perf_export.py --models cae poolae --repeats 5
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import numpy as np
import torch

import dfr
from baselines import CAE, STAE, ConvLSTMAE, PatchMemoryBank, PCAResidual, PoolAE
from dfr import DFR
from dfr.data.synthetic import write_ucsd_like
from dfr.data.synthetic.defects import defect_dataset
from dfr.models.backbones.timm_backbone import (
    OFFLINE_BACKBONE,
    pretrained_offline_available,
)

MODELS = ("dfr", "pca", "bank", "cae", "poolae", "stae", "convlstm")


def _build(kind: str):
    features = ({"backbone": OFFLINE_BACKBONE, "weights": "imagenet"} if pretrained_offline_available()
                else {"weights": None})
    if kind == "dfr":
        return DFR("cpu", device="cpu", **features)
    if kind == "pca":
        return PCAResidual(device="cpu", **features)
    if kind == "bank":
        return PatchMemoryBank(device="cpu", **features)
    if kind == "cae":
        return CAE("cpu", epochs=2, device="cpu")
    if kind == "poolae":
        return PoolAE("cpu", epochs=2, device="cpu")
    if kind == "stae":
        return STAE("cpu", epochs=2, device="cpu")
    if kind == "convlstm":
        return ConvLSTMAE("cpu", epochs=2, device="cpu")
    raise ValueError(f"unknown model kind {kind!r}; choose from {MODELS}")


def _seconds(model, data) -> float:
    started = time.perf_counter()
    model.predict(data)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed runs of each (default 3)")
    args = parser.parse_args(argv)
    images = defect_dataset("brick", n_train=12, n_test=16, size=256, seed=0)
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads); CPU; best of {args.repeats} runs")
    print(f"{'model':>9s} {'inputs':>6s} {'torch /s':>9s} {'onnxrt /s':>9s} {'ratio':>6s} {'max diff / q99':>14s}")
    with tempfile.TemporaryDirectory() as root:
        video = write_ucsd_like(f"{root}/ucsd", n_train_clips=2, n_test_clips=1, seed=0)
        for kind in args.models:
            model = _build(kind)
            clips = kind in ("stae", "convlstm")
            train, test = (video.train, video.test) if clips else (images.train, images.test)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(train)
            exported = dfr.load(model.export_onnx(f"{root}/{kind}.onnx"))
            count = sum(len(clip) for clip in test) if clips else len(test)
            difference = max(np.abs(a - b).max() for a, b in zip(model.anomaly_map(test), exported.anomaly_map(test)))
            timings = {"torch": [], "onnx": []}
            for _ in range(args.repeats):
                timings["torch"].append(_seconds(model, test))
                timings["onnx"].append(_seconds(exported, test))
            torch_rate, onnx_rate = count / min(timings["torch"]), count / min(timings["onnx"])
            print(f"{kind:>9s} {count:6d} {torch_rate:9.1f} {onnx_rate:9.1f} {onnx_rate / torch_rate:6.2f} "
                  f"{difference / model.score_stats_['pixel_q99']:14.1e}", flush=True)


if __name__ == "__main__":
    main()
