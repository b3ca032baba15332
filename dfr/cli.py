"""The ``dfr`` command: fit, predict and demo, mirroring the Python API."""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

from dfr.backbones.vgg import IMAGENET_URL

EXAMPLES = {
    "fit": "example:\n  dfr fit --train data/bottle/train/good --preset cpu --out bottle.dfr",
    "predict": "example:\n  dfr predict bottle.dfr data/bottle/test/broken_large --out results/",
    "demo": "example:\n  dfr demo --out demo-output",
}


def _weights(value: str) -> str | None:
    """``imagenet``, ``random`` (→ None) or a path to vgg19-dcbb9e9d.pth."""
    if value == "random":
        return None
    if value != "imagenet" and not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"{value}: not 'imagenet', 'random' or an existing checkpoint file")
    return value


def cached_imagenet_weights() -> str | None:
    """Path of torchvision's VGG19 checkpoint in torch's hub cache, if it is there."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_URL).name
    return str(path) if path.is_file() else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfr",
        description="Unsupervised anomaly segmentation: fit on normal images, predict maps, masks and boxes.",
        epilog="Run 'dfr <command> --help' for the options and an example of each command.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    fit = commands.add_parser(
        "fit", help="train DFR on a folder of normal images and write one model file",
        epilog=EXAMPLES["fit"], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("--train", required=True, help="folder of normal (defect-free) training images")
    fit.add_argument("--validation", help="folder of held-out normal images for the threshold "
                     "(default: a seeded split of --train)")
    fit.add_argument("--preset", choices=["cpu", "paper"], default="cpu",
                     help="cpu: practical on a CPU (default); paper: the authors' settings, for a GPU")
    fit.add_argument("--weights", type=_weights, default="imagenet",
                     help="VGG19 weights: imagenet (default; downloaded once and cached), random (tests only) "
                          "or a path to vgg19-dcbb9e9d.pth")
    fit.add_argument("--image-size", type=int, default=256, help="network input side in pixels (default 256)")
    fit.add_argument("--epochs", type=int, help="autoencoder epochs (default: the preset's)")
    fit.add_argument("--target-fpr", type=float, default=0.005,
                     help="fraction of normal pixels allowed above the threshold (default 0.005)")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fit.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, …")
    fit.add_argument("--out", required=True, help="model file to write")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing model file")

    predict = commands.add_parser(
        "predict", help="run a model on images; write maps, heatmaps, masks, overlays, boxes and scores",
        epilog=EXAMPLES["predict"], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("model", help="model file written by 'dfr fit'")
    predict.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    predict.add_argument("--out", required=True, help="output folder (must be empty or new)")
    predict.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    predict.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, …")

    demo = commands.add_parser(
        "demo", help="fit DFR on texture photos with planted defects and write its outputs",
        epilog=EXAMPLES["demo"], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    demo.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    demo.add_argument("--texture", choices=["brick", "grass", "gravel"], default="brick")
    demo.add_argument("--weights", default="auto",
                      help="auto (ImageNet VGG19 if already cached, else random; never downloads), "
                           "imagenet, random or a checkpoint path")
    demo.add_argument("--seed", type=int, default=0)
    return parser


def run_fit(args: argparse.Namespace) -> None:
    from dfr import DFR
    from dfr.io import load_images

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out}: file exists (use --overwrite to replace it)")
    train, _ = load_images(args.train)
    validation = load_images(args.validation)[0] if args.validation else None
    model = DFR(
        args.preset, weights=args.weights, image_size=args.image_size, epochs=args.epochs,
        target_fpr=args.target_fpr, seed=args.seed, device=args.device,
    )
    started = time.perf_counter()
    model.fit(train, validation=validation)
    model.save(out, overwrite=args.overwrite)
    print(f"fitted DFR on {len(train)} images in {time.perf_counter() - started:.0f} s: latent size {model.latent_dim_}, "
          f"threshold {model.threshold_:.6g} (target FPR {model.target_fpr}); wrote {out}")


def run_predict(args: argparse.Namespace) -> None:
    import dfr
    from dfr.io import load_images
    from dfr.outputs import check_output_folder, write_prediction

    check_output_folder(args.out, args.overwrite)
    model = dfr.load(args.model, device=args.device)
    images, names = [], []
    for item in args.inputs:
        more, more_names = load_images(item)
        images += more
        names += more_names
    prediction = model.predict(images)
    out = write_prediction(args.out, prediction, images, names, model.heatmap_range, overwrite=args.overwrite)
    flagged = sum(len(boxes) > 0 for boxes in prediction.boxes)
    print(f"{len(images)} images, {flagged} with at least one box (threshold {prediction.threshold:.6g}); wrote {out}")


def run_demo(args: argparse.Namespace) -> None:
    from dfr import DFR
    from dfr.metrics import pixel_auroc, pro_auc
    from dfr.outputs import check_output_folder, write_prediction
    from dfr.synthetic import defect_dataset

    check_output_folder(args.out, args.overwrite)
    weights = cached_imagenet_weights() if args.weights == "auto" else _weights(args.weights)
    if weights is None:
        print("demo: VGG19 with random weights (no ImageNet checkpoint cached); fine for a demo, not for real use")
    data = defect_dataset(args.texture, n_train=24, n_test=12, size=128, seed=args.seed)
    model = DFR("cpu", weights=weights, image_size=128, seed=args.seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="VGG19 with random weights")
        model.fit(data.train)
    fit_seconds = time.perf_counter() - started
    prediction = model.predict(data.test)
    images = [image[:, :, None] for image in data.test]
    names = [f"{index:02d}_{kind}.png" for index, kind in enumerate(data.defects)]
    out = write_prediction(args.out, prediction, images, names, model.heatmap_range, overwrite=args.overwrite)
    print(f"demo: DFR fitted on {len(data.train)} {args.texture} crops of 128x128 in {fit_seconds:.0f} s "
          f"(latent size {model.latent_dim_}, threshold {model.threshold_:.4g})")
    print(f"demo: {len(data.test)} test crops ({data.defects.count('good')} good): "
          f"pixel ROC-AUC {pixel_auroc(prediction.anomaly_maps, data.masks):.3f}, "
          f"PRO-AUC (FPR ≤ 0.3, at 128x128) {pro_auc(prediction.anomaly_maps, data.masks):.3f}")
    print(f"demo: wrote maps, heatmaps, masks, overlays with boxes, boxes.json and scores.csv to {out}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runners = {"fit": run_fit, "predict": run_predict, "demo": run_demo}
    try:
        runners[args.command](args)
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        print(f"dfr {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
