"""PRO-AUC speed and memory next to scikit-learn's ``roc_auc_score`` on the same pixels.

Both are bound by one sort of all pixels; the goal is PRO-AUC no slower than 3x
``roc_auc_score``. The data: 200 float32 maps of 256x256 (smooth noise, raised over the
defects) and MVTec-like masks (a third of the images good, the rest with one to three
ellipses, blobs or scratches of very different sizes).

    python benchmarks/perf_metrics.py
    python benchmarks/perf_metrics.py --images 50 --size 512 --repeat 1

Prints the best-of-``--repeat`` wall time of each, their ratio, and the peak memory PRO-AUC
allocates (traced by tracemalloc in a separate, untimed run) next to the size of the maps.
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score

from dfr.metrics import pro_auc


def make_data(images: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 maps (N, size, size) and uint8 0/255 masks of the same shape."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((images, size, size), np.uint8)
    for mask in masks[images // 3:]:
        for _ in range(int(rng.integers(1, 4))):
            centre = tuple(int(v) for v in rng.integers(size // 8, 7 * size // 8, 2))
            kind = rng.integers(3)
            if kind == 0:  # ellipse from a few pixels to a quarter of the image side
                axes = tuple(int(v) for v in rng.integers(1, size // 8, 2))
                cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, thickness=-1)
            elif kind == 1:  # scratch
                end = np.clip(np.array(centre) + rng.integers(-size // 3, size // 3, 2), 0, size - 1)
                end = tuple(int(v) for v in end)
                cv2.line(mask, centre, end, 255, thickness=int(rng.integers(1, 4)))
            else:  # irregular blob: thresholded smooth noise inside a disc
                radius = int(rng.integers(4, size // 10))
                disc = np.zeros_like(mask)
                cv2.circle(disc, centre, radius, 1, thickness=-1)
                noise = cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 3)
                mask[(disc > 0) & (noise > np.median(noise[disc > 0]))] = 255
    noise = rng.random(masks.shape, dtype=np.float32)
    signal = (masks > 0).astype(np.float32) * rng.uniform(0.0, 1.0, (images, 1, 1)).astype(np.float32)
    maps = np.stack([cv2.GaussianBlur(n + 3 * s, (0, 0), 2) for n, s in zip(noise, signal)])
    return maps, masks


def best_time(function, repeat: int) -> tuple[float, float]:
    """(best wall time in s, last result) over ``repeat`` calls."""
    best, value = np.inf, None
    for _ in range(repeat):
        started = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    maps, masks = make_data(args.images, args.size)
    labels, scores = masks.ravel() > 0, maps.ravel()
    print(f"{args.images} maps of {args.size}x{args.size} float32 ({maps.nbytes / 2**20:.0f} MiB), "
          f"{np.mean(masks.reshape(args.images, -1).max(axis=1) > 0):.0%} of images with defects, "
          f"{labels.mean():.2%} anomalous pixels")

    pro_seconds, pro = best_time(lambda: pro_auc(maps, masks), args.repeat)
    roc_seconds, roc = best_time(lambda: roc_auc_score(labels, scores), args.repeat)
    print(f"PRO-AUC {pro:.4f}, pixel ROC-AUC {roc:.4f}")
    print(f"pro_auc: {pro_seconds:.2f} s, roc_auc_score: {roc_seconds:.2f} s, ratio {pro_seconds / roc_seconds:.2f} "
          f"(goal <= 3; best of {args.repeat})")

    tracemalloc.start()
    pro_auc(maps, masks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"pro_auc peak allocation: {peak / 2**20:.0f} MiB ({peak / maps.nbytes:.1f}x the maps; "
          f"{peak / scores.size:.0f} bytes per pixel)")


if __name__ == "__main__":
    main()
