"""The ``dfr`` command's model commands, ``fit`` and ``predict``, mirroring the Python API.

``benchmarks.cli`` adds ``bench`` and ``demo`` and is what the installed ``dfr`` runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXAMPLES = {
    "fit": "example:\n  dfr fit --train data/bottle/train/good --preset cpu --out bottle.dfr",
    "predict": "example:\n  dfr predict bottle.dfr data/bottle/test/broken_large --out results/",
}


def _weights(value: str) -> str | None:
    """``imagenet``, ``random`` (→ None) or a path to vgg19-dcbb9e9d.pth."""
    if value == "random":
        return None
    if value != "imagenet" and not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"{value}: not 'imagenet', 'random' or an existing checkpoint file")
    return value


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The ``dfr`` parser with ``fit`` and ``predict``, and its sub-command group for more."""
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

    return parser, commands


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


RUNNERS = {"fit": run_fit, "predict": run_predict}


def run(parser: argparse.ArgumentParser, runners: dict, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; bad input → status 1 and a one-line reason."""
    args = parser.parse_args(argv)
    try:
        runners[args.command](args)
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        print(f"dfr {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``fit`` and ``predict`` only; the installed ``dfr`` command adds ``bench`` and ``demo``."""
    parser, _ = build_parser()
    return run(parser, RUNNERS, argv)


if __name__ == "__main__":
    sys.exit(main())
