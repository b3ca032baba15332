"""The ``dfr`` command (``dfr.cli:main``, ``python -m dfr``): its parser, and how a command's
outcome becomes an exit status.

Commands: ``fit``, ``predict``, ``export``, ``stream`` (:mod:`dfr.cli.commands`) and ``bench``,
``evaluate``, ``demo`` (:mod:`dfr.cli.evaluation`); every registered model is available to
each. Exit status: 0 done; 2 bad input or a file problem (one line on stderr); 130 / 143
stopped by Ctrl-C / SIGTERM after removing unfinished outputs; 1 an unexpected error.
``--debug`` shows the traceback instead of the one line.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from dfr import distributed
from dfr.cli import evaluation
from dfr.cli.arguments import (
    COMMON_FLAGS,
    SCORING_FIELDS,
    WORKERS_HELP,
    add_scoring_flags,
    argument_docs,
    argument_help,
    constructor_arguments,
    weights_flag,
)
from dfr.cli.commands import RUNNERS, registered_classes
from dfr.scoring import AFTER_FIT

EXAMPLES = {
    "fit": "examples:\n  dfr fit --train data/bottle/train/good --preset cpu --out bottle.dfr\n"
           "  dfr fit --model stae --preset cpu --train UCSDped2/Train --out ped2.dfr\n"
           "  dfr fit --model memory-bank --backbone timm:tf_efficientnet_lite0 --weights imagenet \\\n"
           "      --layers stage1,stage2,stage3 --coreset-fraction 0.05 --train data/bottle/train/good --out bank.dfr",
    "predict": "examples:\n  dfr predict bottle.dfr data/bottle/test/broken_large --out results/\n"
               "  dfr predict ped2.dfr UCSDped2/Test --out ped2-results/   # a video model: every clip folder\n"
               "  dfr predict bottle.onnx data/bottle/test/broken_large --out results/   # with onnxruntime",
    "export": "examples:\n  dfr export bottle.dfr bottle.onnx\n  dfr predict bottle.onnx data/bottle/test --out results/",
    "stream": "examples:\n  dfr stream pool.dfr pool-camera.mp4 --out live/\n"
              "  dfr stream ped2.dfr 0 --out live/ --max-frames 1000   # camera 0; Ctrl-C stops cleanly",
}

#: Exit status of a command refused for its input or files, and of one stopped by a signal.
EXIT_ERROR = 2
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
EXPECTED_ERRORS = (ValueError, TypeError, OSError, RuntimeError, ImportError, MemoryError)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs."""


def build_parser() -> tuple[argparse.ArgumentParser, Any]:
    """The ``dfr`` parser with the model commands, and its sub-command group.

    ``fit --model`` takes every registered model; every constructor argument of those models
    becomes a flag of ``fit`` (see :func:`dfr.cli.commands.run_fit`).
    """
    classes = registered_classes()
    parser = argparse.ArgumentParser(
        prog="dfr",
        description="Unsupervised anomaly segmentation: fit on normal images, predict maps, masks and boxes.",
        epilog="Run 'dfr <command> --help' for the options and an example of each command.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    fit = commands.add_parser(
        "fit", parents=[COMMON_FLAGS],
        help="train a model on normal images or clips and write one model file",
        epilog=EXAMPLES["fit"], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("--model", choices=list(classes), default="dfr", help="which model (default dfr)")
    fit.add_argument("--train", required=True, help="folder of normal (defect-free) training images; for video "
                     "models a folder of clip folders, or one clip folder")
    fit.add_argument("--validation", help="held-out normal images (or clips) for the threshold "
                     "(default: a seeded split of --train)")
    fit.add_argument("--region-masks", help="image models: region of interest, one mask image for every "
                     "training image or a folder of masks in the images' order; pixels > 0 are inside")
    fit.add_argument("--validation-region-masks", help="the same for --validation")
    fit.add_argument("--weights", type=weights_flag, default=argparse.SUPPRESS,
                     help="DFR's and the feature heads' backbone weights: imagenet (default; for VGG19 downloaded "
                          "once and cached), random (tests only) or a checkpoint path")
    model_flags = fit.add_argument_group(
        "model arguments",
        "The chosen model's constructor arguments (Python: help(dfr.DFR), help(baselines.CAE), ...); an\n"
        "omitted flag takes the constructor's default. Values: numbers, true/false, none, words, and\n"
        "comma-separated lists (--layers relu1_1,relu2_1).")
    docs: dict[str, str] = {}
    for model_class in reversed(classes.values()):
        docs.update(argument_docs(model_class))  # the first model that documents an argument wins
    for name, parameters in constructor_arguments(classes).items():
        model_flags.add_argument(f"--{name.replace('_', '-')}", default=argparse.SUPPRESS,
                                 help=argument_help(name, parameters, docs))
    add_scoring_flags(fit, SCORING_FIELDS, "scoring settings (stored in the model file; see dfr.ScoringSettings)")
    fit.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fit.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, …")
    fit.add_argument("--workers", type=int, default=0, help=WORKERS_HELP)
    fit.add_argument("--out", required=True, help="model file to write")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing model file")

    predict = commands.add_parser(
        "predict", parents=[COMMON_FLAGS],
        help="run a model on images or clips; write maps, heatmaps, masks, overlays, boxes and scores",
        epilog=EXAMPLES["predict"], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    predict.add_argument("model", help="model file written by 'dfr fit', or an .onnx file written by 'dfr export' "
                         "(run with onnxruntime)")
    predict.add_argument("inputs", nargs="+", help="image files and/or folders of images; for video models clip "
                         "folders or folders of clip folders (one MP4 per clip is written too)")
    predict.add_argument("--region-masks", help="image models: region of interest, as for 'dfr fit'")
    predict.add_argument("--out", required=True, help="output folder (must be empty or new)")
    predict.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    predict.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, …")
    predict.add_argument("--workers", type=int, default=0, help=WORKERS_HELP)
    add_scoring_flags(predict, AFTER_FIT, "scoring settings that replace the model's for this run (default: "
                       "the model's own)")

    export = commands.add_parser(
        "export", parents=[COMMON_FLAGS],
        help="write a fitted model as one ONNX graph (network input batch to anomaly maps) with its "
                       "settings in the metadata", epilog=EXAMPLES["export"], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("model", help="model file written by 'dfr fit'")
    export.add_argument("out", help="ONNX file to write (.onnx)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing ONNX file")

    stream = commands.add_parser(
        "stream", parents=[COMMON_FLAGS],
        help="run a model on a video file, camera or stream URL: overlay MP4 and per-frame JSON lines",
        epilog=EXAMPLES["stream"], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stream.add_argument("model", help="model file written by 'dfr fit' or 'dfr export'")
    stream.add_argument("source", help="video file, camera index (0, 1, …) or stream URL (rtsp://…, http://…)")
    stream.add_argument("--out", required=True, help="output folder for overlay.mp4 and frames.jsonl (must be empty or new)")
    stream.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    stream.add_argument("--max-frames", type=int, help="stop after this many frames (default: the end of the source)")
    stream.add_argument("--realtime", action="store_true", help="a file: read it at its own frame rate and skip "
                        "frames when the model is slower (cameras and URLs always do)")
    stream.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, …")

    return parser, commands


def run(parser: argparse.ArgumentParser, runners: dict, argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the chosen command and return its exit status (see the module's
    docstring). SIGTERM is raised as :class:`Terminated`, so that a stopped command removes
    what it had not finished, as on Ctrl-C."""
    args = parser.parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print escaped
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        runners[args.command](args)
    except (KeyboardInterrupt, Exception) as error:
        if args.debug:
            raise
        status, reason = _failure(error)
        print(f"dfr {args.command}: {reason}", file=sys.stderr)
        return status
    finally:
        distributed.shutdown()
        if in_main_thread and previous is not None:  # None: a handler not installed from Python
            signal.signal(signal.SIGTERM, previous)
    return 0


def _failure(error: BaseException) -> tuple[int, str]:
    """The exit status of a command that raised ``error``, and the line that says why."""
    if isinstance(error, KeyboardInterrupt):
        stopper = signal.SIGTERM if isinstance(error, Terminated) else signal.SIGINT
        return EXIT_INTERRUPTED[stopper], f"stopped by {stopper.name}; unfinished outputs removed, existing files unchanged"
    if isinstance(error, EXPECTED_ERRORS):
        return EXIT_ERROR, f"error: {str(error) or type(error).__name__}"
    return 1, (f"unexpected error ({type(error).__name__}: {error}); run again with --debug for the traceback and "
               "please report it")


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    """Run the ``dfr`` command with ``argv`` (default: the process's arguments); return its exit status."""
    parser, commands = build_parser()
    evaluation.add_commands(commands)
    return run(parser, {**RUNNERS, **evaluation.RUNNERS}, argv)
