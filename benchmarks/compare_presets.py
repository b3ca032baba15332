"""PRO-AUC of DFR's "cpu" preset against its "paper" preset, same data, same backbone weights.

The paper preset (150 epochs on whole maps) takes hours per dataset at 256x256 on a CPU, so
on a CPU this runs a reduced setting by default: 128x128 crops of scikit-image textures with
planted defects, a dozen training images, seeded random VGG19 weights shared by both presets.
On a GPU, pass ``--size 256 --train 100``. ``--backbone`` compares the presets on another
backbone, e.g. the offline ImageNet EfficientNet-Lite0 with the crops enlarged to 256 px:

    python benchmarks/compare_presets.py --textures brick grass --train 12 --test 12 --size 128
    python benchmarks/compare_presets.py --backbone timm:tf_efficientnet_lite0 --weights imagenet --image-size 256 \
        --textures brick grass gravel --seeds 0 1 2

With several ``--seeds`` each preset is fitted once per seed (the seed fixes the
autoencoder's initialisation, the sampling, the validation split and, with random weights,
the backbone; both presets get the same seed, so the same backbone weights), and the table
gives the mean and the range over the seeds. The data are the same for every seed.
``--presets cpu --cpu-settings '{"hidden": 512}'`` measures a variant of the cpu preset alone.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from dfr import DFR
from dfr.data.synthetic.defects import TEXTURES, defect_dataset
from dfr.metrics import pixel_auroc, pro_auc


def fit_and_map(preset: str, data, args, seed: int) -> tuple[np.ndarray, int, float]:
    """Fit one preset; return its test maps, latent size and fit seconds."""
    overrides = args.cpu_settings if preset == "cpu" else {}
    model = DFR(preset, backbone=args.backbone, weights=args.weights, image_size=args.image_size or args.size,
                seed=seed, device=args.device, **overrides)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data.train)
    return model.anomaly_map(data.test), model.latent_dim_, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--textures", nargs="+", choices=TEXTURES, default=["brick"])
    parser.add_argument("--train", type=int, default=12, help="normal images per texture (default 12)")
    parser.add_argument("--test", type=int, default=12, help="test images per texture (default 12)")
    parser.add_argument("--size", type=int, default=128, help="image side of the data (default 128)")
    parser.add_argument("--image-size", type=int, help="DFR's network input side (default: --size)")
    parser.add_argument("--backbone", default="vgg19", help="DFR backbone (default vgg19)")
    parser.add_argument("--weights", default=None,
                        help="backbone weights: a checkpoint path or 'imagenet' (default: seeded random weights)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="model seeds (default 0)")
    parser.add_argument("--presets", nargs="+", choices=["cpu", "paper"], default=["cpu", "paper"],
                        help="presets to fit (default both; the difference is printed only for both)")
    parser.add_argument("--cpu-settings", type=json.loads, default={},
                        help='DFR arguments that override the cpu preset, as JSON, e.g. \'{"hidden": 512}\'')
    parser.add_argument("--save-maps", help="also write every map and mask (first seed) to this .npz file")
    args = parser.parse_args()
    rows, differences, saved = [], [], {}
    for texture in args.textures:
        data = defect_dataset(texture, n_train=args.train, n_test=args.test, size=args.size, seed=0)
        pro = {}
        for preset in args.presets:
            for seed in args.seeds:
                maps, latent, seconds = fit_and_map(preset, data, args, seed)
                pro[preset, seed] = pro_auc(maps, data.masks)
                rows.append((texture, preset, seed, pro[preset, seed], pixel_auroc(maps, data.masks), latent, seconds))
                print(f"fitted {preset} on {texture} (seed {seed}) in {seconds:.0f} s: PRO-AUC {pro[preset, seed]:.3f}",
                      flush=True)
                if seed == args.seeds[0]:
                    saved[f"{texture}_{preset}_maps"], saved[f"{texture}_masks"] = maps, data.masks
        if len(args.presets) == 2:
            differences.append([pro["cpu", seed] - pro["paper", seed] for seed in args.seeds])
    if args.save_maps:
        np.savez_compressed(args.save_maps, **saved)

    print(f"\n{'texture':8} {'preset':6} {'seed':>4} {'PRO-AUC':>8} {'pixel AUROC':>11} {'latent':>6} {'fit s':>7}")
    for texture, preset, seed, pro_value, auroc, latent, seconds in rows:
        print(f"{texture:8} {preset:6} {seed:4d} {pro_value:8.3f} {auroc:11.3f} {latent:6d} {seconds:7.0f}")
    means = {preset: np.mean([row[3] for row in rows if row[1] == preset]) for preset in args.presets}
    print("\n" + ", ".join(f"mean PRO-AUC {preset} {value:.3f}" for preset, value in means.items())
          + (f" (cpu settings {args.cpu_settings})" if args.cpu_settings else ""))
    for texture, difference in zip(args.textures, differences):
        print(f"{texture:8} cpu − paper PRO-AUC: mean {np.mean(difference):+.3f} over seeds {args.seeds} "
              f"(range {min(difference):+.3f} … {max(difference):+.3f})")
    if differences:
        print(f"mean cpu − paper PRO-AUC over {len(differences)} texture(s) and {len(args.seeds)} seed(s): "
              f"{np.mean(differences):+.3f} (backbone {args.backbone}, weights {args.weights or 'random'}; "
              f"PRO at the {args.size}x{args.size} mask resolution, FPR limit 0.3)")


if __name__ == "__main__":
    main()
