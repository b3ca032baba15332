"""DFR throughput and memory for both presets, next to this machine's measured fp32 matmul peak.

Prints, per backbone and preset: feature extraction images/s, autoencoder training throughput,
predict images/s, peak RSS, and achieved GFLOP/s (analytic FLOP counts of the backbone's
convolutions and the 1x1-conv autoencoder divided by wall time). Each run has its own process
so that peak RSS belongs to it alone. By default it runs VGG19 and, when ``dfr[timm]`` is
installed, the offline ImageNet EfficientNet-Lite0 (``timm:tf_efficientnet_lite0``).

    python benchmarks/perf_dfr.py                      # both presets, default sizes
    python benchmarks/perf_dfr.py --preset cpu --images 100
    python benchmarks/perf_dfr.py --preset paper --images 8 --epochs 1
    python benchmarks/perf_dfr.py --backbone timm:resnet18 --preset cpu

FLOPs are counted for direct convolution; oneDNN may run VGG's 3x3 convolutions with
Winograd-type algorithms that need fewer, so the achieved rate can exceed the matmul peak.

The paper preset trains for 150 epochs on whole maps, which takes hours on a CPU; by default
it is timed on fewer images and one epoch (throughput does not depend on the epoch count).
VGG19 weights are seeded random (no download); the cost is the same as with ImageNet weights
except that the latent size, chosen by PCA, may differ (``--latent-dim`` fixes it).
"""
from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
import warnings

import torch

from dfr import DFR
from dfr.data.synthetic.defects import defect_dataset
from dfr.models.backbones.timm_backbone import (
    OFFLINE_BACKBONE,
    pretrained_offline_available,
)

DEFAULTS = {"cpu": {"images": 100, "epochs": None}, "paper": {"images": 8, "epochs": 1}}


def matmul_peak_gflops(size: int = 2048, seconds: float = 3.0) -> float:
    """Best fp32 matmul rate over repeated (size x size) products, in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - started) / 1e9)
    return best


def backbone_gflop(backbone: torch.nn.Module, layers: list[str], size: int) -> float:
    """FLOPs (2 x multiply-adds) of the backbone's convolutions for one image, in GFLOP.

    Counted with forward hooks on a dummy (1, 3, size, size) input, so only the convolutions
    that run up to the deepest requested layer count.
    """
    total = 0.0

    def count(module, inputs, output):
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1]
        total += 2 * module.in_channels // module.groups * kernel * output.numel()

    hooks = [m.register_forward_hook(count) for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        backbone.forward_features(torch.zeros(1, 3, size, size), layers)
    for hook in hooks:
        hook.remove()
    return total / 1e9


def run_preset(
    preset: str, images: int, epochs: int | None, size: int, latent_dim: int | None,
    backbone: str = "vgg19", weights: str | None = None,
) -> dict:
    data = defect_dataset("brick", n_train=images, n_test=8, size=size, seed=0)
    model = DFR(preset, backbone=backbone, weights=weights, image_size=size, epochs=epochs, latent_dim=latent_dim,
                seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        model.fit(data.train)
        fit_seconds = time.perf_counter() - started
    peak_before = matmul_peak_gflops(seconds=2.0)
    started = time.perf_counter()
    model.predict(data.test)
    predict_seconds = time.perf_counter() - started
    peak_after = matmul_peak_gflops(seconds=2.0)

    n_train = len(data.train) - round(model.scoring.validation_fraction * len(data.train))
    settings = model.training_settings()
    epochs_run = len(model.training_loss_)
    positions = (size // 4) ** 2
    ae_gflop_position = model.autoencoder_.flops_per_position() / 1e9
    features_gflop = backbone_gflop(model.extractor_.backbone, model.extractor_.layers, size)
    predict_gflop = len(data.test) * (features_gflop + positions * ae_gflop_position)
    if settings["positions_per_image"] is None:  # whole maps, features recomputed every epoch
        train_gflop = epochs_run * n_train * (features_gflop + 3 * positions * ae_gflop_position)
    else:
        train_gflop = epochs_run * model.training_vectors_ * 3 * ae_gflop_position
    return {
        "backbone": backbone, "channels": model.extractor_.channels,
        "weights": getattr(model.extractor_.backbone, "weights_origin", None) or weights or "random",
        "preset": preset, "images": len(data.train), "train_images": n_train, "size": size,
        "epochs": epochs_run, "latent_dim": model.latent_dim_,
        "hidden": model.autoencoder_.encoder[0].out_channels,
        "fit_s": fit_seconds,
        "feature_images_per_s": n_train / model.fit_seconds_["features"],
        "feature_gflops": n_train * features_gflop / model.fit_seconds_["features"],
        "train_s": model.fit_seconds_["train"],
        "train_image_epochs_per_s": epochs_run * n_train / model.fit_seconds_["train"],
        "train_gflops": train_gflop / model.fit_seconds_["train"],
        "predict_images_per_s": len(data.test) / predict_seconds,
        "predict_gflops": predict_gflop / predict_seconds,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "matmul_peak_gflops": max(peak_before, peak_after),
    }


def report(result: dict) -> None:
    r = result
    print(f"\n{r['backbone']} ({r['weights']}, {r['channels']} channels), "
          f"preset {r['preset']!r}: {r['images']} images of {r['size']}x{r['size']} "
          f"({r['train_images']} for training), {r['epochs']} epochs, latent {r['latent_dim']}, hidden {r['hidden']}")
    print(f"  fit total            {r['fit_s']:8.1f} s")
    print(f"  feature extraction   {r['feature_images_per_s']:8.2f} images/s   {r['feature_gflops']:6.1f} GFLOP/s")
    print(f"  autoencoder training {r['train_image_epochs_per_s']:8.2f} image-epochs/s "
          f"{r['train_gflops']:6.1f} GFLOP/s  ({r['train_s']:.1f} s)")
    print(f"  predict              {r['predict_images_per_s']:8.2f} images/s   {r['predict_gflops']:6.1f} GFLOP/s "
          f"= {100 * r['predict_gflops'] / r['matmul_peak_gflops']:.0f} % of the matmul peak "
          f"({r['matmul_peak_gflops']:.0f} GFLOP/s, measured around the predict)")
    print(f"  peak RSS             {r['peak_rss_gib']:8.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["cpu", "paper"], help="one preset in this process (default: both)")
    parser.add_argument("--images", type=int, help="training images (default: cpu 100, paper 8)")
    parser.add_argument("--epochs", type=int, help="autoencoder epochs (default: cpu its preset's, paper 1)")
    parser.add_argument("--size", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--latent-dim", type=int, help="fix the latent size instead of PCA")
    parser.add_argument("--backbone", help="one backbone, e.g. timm:resnet18 (default: vgg19 and the offline "
                        "pretrained one when dfr[timm] is installed)")
    parser.add_argument("--weights", help="weights of --backbone (default: seeded random)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.preset and args.json:
        defaults = DEFAULTS[args.preset]
        result = run_preset(args.preset, args.images or defaults["images"], args.epochs or defaults["epochs"],
                            args.size, args.latent_dim, args.backbone or "vgg19", args.weights)
        print(json.dumps(result))
        return
    print(f"device: cpu, {torch.get_num_threads()} threads")
    backbones = [(args.backbone, args.weights)] if args.backbone else [("vgg19", None)]
    if not args.backbone and pretrained_offline_available():
        backbones.append((OFFLINE_BACKBONE, "imagenet"))
    for (backbone, weights), preset in itertools.product(backbones, [args.preset] if args.preset else ["cpu", "paper"]):
        command = [sys.executable, __file__, "--preset", preset, "--size", str(args.size), "--json",
                   "--backbone", backbone]
        for flag, value in (("--images", args.images), ("--epochs", args.epochs), ("--latent-dim", args.latent_dim),
                            ("--weights", weights)):
            if value is not None:
                command += [flag, str(value)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        report(json.loads(output.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
