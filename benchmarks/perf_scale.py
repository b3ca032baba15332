"""Memory and speed of ``dfr fit`` and ``dfr predict`` as the number of images grows, and
with one against two processes; images streamed from disk.

For each N, writes N generated training images and N test images of 256² (crops of the
brick texture, with planted defects in the test set; the distinct crops repeat when N is
large), then runs ``dfr fit`` on the training images and ``dfr predict`` on the test images,
each in a fresh process. Prints, per N, the peak resident memory of the largest process and
the images per second (start-up and model loading included). Both commands read images as
they reach them, so the peaks should not grow with N (target: at most 1.3x from the smallest
to the largest N) and predict's images per second should not drop.

Then runs the same commands at ``--process-size`` images under ``torchrun
--nproc_per_node=P`` for each P in ``--processes`` (gloo on CPU, nccl on GPUs) and prints the
same figures; the peak is per process. ``CPU ms/img``: predict's CPU time (user + system,
every process and thread) per image, which, unlike images/s, does not depend on how fast a
shared machine runs at the moment. ``written MiB``: the size of predict's output folder
(deleted after each run: the disk holds one at a time).

    python benchmarks/perf_scale.py                            # N = 200 and 2000; 1 and 2 processes at 200
    python benchmarks/perf_scale.py --sizes 200 2000 20000 --model cae
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dfr.data.synthetic.defects import defect_dataset
from dfr.models.backbones.timm_backbone import (
    OFFLINE_BACKBONE,
    pretrained_offline_available,
)

#: Runs the command given as arguments and prints the peak resident memory of the largest
#: process of its tree in KiB and the CPU seconds (user + system) of the whole tree
#: (getrusage of the waited-for descendants).
_MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN); print(usage.ru_maxrss, usage.ru_utime + usage.ru_stime)"
)
DISTINCT = 200  # distinct generated crops per set; larger sets repeat them


def _write(folder: Path, images: list[np.ndarray], count: int) -> Path:
    folder.mkdir(parents=True)
    for index in range(count):
        image = images[index % len(images)]
        cv2.imwrite(str(folder / f"img_{index:06d}.png"), cv2.cvtColor((image * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    return folder


def _measure(command: list[str]) -> tuple[float, float, float]:
    """(peak resident memory in MiB, wall seconds, CPU seconds) of ``command`` run in a fresh process."""
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", _MEASURE, *command], check=True, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    peak, cpu = output.stdout.split()[-2:]
    return int(peak) / 1024, time.perf_counter() - started, float(cpu)


def _model_flags(model: str) -> list[str]:
    if model == "dfr":
        backbone = (["--backbone", OFFLINE_BACKBONE, "--weights", "imagenet"] if pretrained_offline_available()
                    else ["--weights", "random"])
        return ["--model", "dfr", *backbone]
    if model == "cae":
        return ["--model", "cae", "--preset", "cpu", "--epochs", "5"]
    raise ValueError(f"--model must be dfr or cae, got {model!r}")


def _launcher(processes: int) -> list[str]:
    binaries = Path(sys.executable).parent
    if processes == 1:
        return [str(binaries / "dfr")]
    return [str(binaries / "torchrun"), "--standalone", f"--nproc_per_node={processes}", "--no-python", str(binaries / "dfr")]


def _fit_and_predict(root: Path, data, count: int, flags: list[str], processes: int) -> tuple[float, ...]:
    """(fit MiB, fit images/s, predict MiB, predict images/s, predict CPU ms per image, MiB that
    predict wrote) for ``count`` images."""
    train = root / f"train_{count}"
    test = root / f"test_{count}"
    if not train.exists():
        _write(train, data.train, count)
        _write(test, data.test, count)
    model = root / f"model_{count}_{processes}.dfr"
    launcher = _launcher(processes)
    fit_mib, fit_seconds, _ = _measure([*launcher, "fit", *flags, "--train", str(train), "--out", str(model), "--overwrite"])
    out = root / f"out_{count}_{processes}"
    predict_mib, predict_seconds, predict_cpu = _measure([*launcher, "predict", str(model), str(test), "--out", str(out),
                                              "--overwrite"])
    written = sum(path.stat().st_size for path in out.rglob("*") if path.is_file()) / 2 ** 20
    shutil.rmtree(out)
    return fit_mib, count / fit_seconds, predict_mib, count / predict_seconds, 1000 * predict_cpu / count, written


def _row(count: int, processes: int, figures: tuple[float, ...]) -> str:
    fit_mib, fit_rate, predict_mib, predict_rate, predict_cpu, written = figures
    return (f"{count:7d} {processes:5d} {fit_mib:8.0f} {fit_rate:9.1f} {predict_mib:11.0f} {predict_rate:13.1f} "
            f"{predict_cpu:10.1f} {written:11.0f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000], help="numbers of images (default 200 2000)")
    parser.add_argument("--model", default="dfr", help="dfr (cpu preset; EfficientNet-Lite0 ImageNet features where "
                        "installed, else VGG19 with random weights) or cae (cpu preset, 5 epochs: every training "
                        "image is read 5 times)")
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 2],
                        help="process counts to compare (default 1 2; none: skip the comparison)")
    parser.add_argument("--process-size", type=int, default=200, help="images for the process comparison (default 200)")
    args = parser.parse_args(argv)
    flags = _model_flags(args.model)
    data = defect_dataset("brick", n_train=DISTINCT, n_test=DISTINCT, size=256, disjoint=False, seed=0)
    print(f"model: {' '.join(flags)}; {os.cpu_count()} CPUs")
    header = (f"{'images':>7s} {'procs':>5s} {'fit MiB':>8s} {'fit img/s':>9s} {'predict MiB':>11s} "
              f"{'predict img/s':>13s} {'CPU ms/img':>10s} {'written MiB':>11s}")
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        print(header)
        rows = []
        for count in args.sizes:
            rows.append(_fit_and_predict(root, data, count, flags, 1))
            print(_row(count, 1, rows[-1]), flush=True)
        if len(rows) > 1:
            print(f"peak RSS {args.sizes[-1]} / {args.sizes[0]} images: fit {rows[-1][0] / rows[0][0]:.2f}x, "
                  f"predict {rows[-1][2] / rows[0][2]:.2f}x (target <= 1.3x)")
        if args.processes:
            print(f"\n{args.process_size} images, per process:\n{header}")
        for processes in args.processes:
            print(_row(args.process_size, processes, _fit_and_predict(root, data, args.process_size, flags, processes)),
                  flush=True)


if __name__ == "__main__":
    main()
