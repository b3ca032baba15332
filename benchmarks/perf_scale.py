"""Memory and speed of ``dfr predict`` as the number of images grows, images streamed from disk.

Fits DFR (cpu preset; EfficientNet-Lite0 ImageNet features where they are installed, else
VGG19 with random weights) once on 40 generated brick crops of 256², then writes sets of N
test images of 256² (the 40 test crops of the same texture, repeated) and runs ``dfr predict``
on each in a fresh process. Prints, per N, the peak resident memory of that process and its
images per second (start-up and model loading included). ``dfr predict`` reads, predicts and
writes one image at a time (``predict_iter``), so the peak should not grow with N.

    python benchmarks/perf_scale.py                   # N = 200 and 2000
    python benchmarks/perf_scale.py --sizes 200 2000 20000

Not yet measured here (issue 15): fit on streamed data, and 1 against 2 processes.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dfr.backbones.timm_backbone import OFFLINE_BACKBONE, pretrained_offline_available
from dfr.synthetic import defect_dataset

#: Runs the command given as arguments and prints the peak resident memory of its process tree in KiB.
_MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _write(folder: Path, images: list[np.ndarray], count: int) -> Path:
    folder.mkdir(parents=True)
    for index in range(count):
        image = images[index % len(images)]
        cv2.imwrite(str(folder / f"img_{index:06d}.png"), cv2.cvtColor((image * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    return folder


def _peak_mib(command: list[str]) -> tuple[float, float]:
    """(peak resident memory in MiB, wall seconds) of ``command`` run in a fresh process."""
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", _MEASURE, *command], check=True, capture_output=True, text=True)
    return int(output.stdout.split()[-1]) / 1024, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000], help="numbers of test images")
    args = parser.parse_args(argv)
    data = defect_dataset("brick", n_train=40, n_test=40, size=256, disjoint=False, seed=0)
    dfr_command = [str(Path(sys.executable).with_name("dfr"))]
    backbone = (["--backbone", OFFLINE_BACKBONE, "--weights", "imagenet"] if pretrained_offline_available()
                else ["--weights", "random"])
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        train = _write(root / "train", data.train, len(data.train))
        model = root / "model.dfr"
        fit_mib, fit_seconds = _peak_mib([*dfr_command, "fit", "--model", "dfr", *backbone, "--image-size", "256",
                                          "--train", str(train), "--out", str(model)])
        print(f"fit on {len(data.train)} images: {fit_seconds:.1f} s, peak RSS {fit_mib:.0f} MiB ({' '.join(backbone)})")
        print(f"{'images':>7s} {'peak RSS MiB':>13s} {'images/s':>9s}")
        for count in args.sizes:
            images = _write(root / f"test_{count}", data.test, count)
            peak, seconds = _peak_mib([*dfr_command, "predict", str(model), str(images), "--out", str(root / f"out_{count}")])
            print(f"{count:7d} {peak:13.0f} {count / seconds:9.1f}", flush=True)


if __name__ == "__main__":
    main()
