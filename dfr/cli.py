"""The ``dfr`` command's model commands, ``fit``, ``predict``, ``export`` and ``stream``,
mirroring the Python API.

``benchmarks.cli`` adds ``bench``, ``evaluate`` and ``demo`` and is what the installed ``dfr``
runs. Exit status: 0 done; 2 bad input or a file problem (one line on stderr); 130 / 143
stopped by Ctrl-C / SIGTERM after removing unfinished outputs; 1 an unexpected error.
``--debug`` shows the traceback instead of the one line.
"""
from __future__ import annotations

import argparse
import collections.abc
import inspect
import re
import signal
import sys
import threading
import time
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np

from dfr import distributed
from dfr.dfr_model import DFR
from dfr.scoring import AFTER_FIT, ScoringSettings

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


def _weights(value: str) -> str | None:
    """``imagenet``, ``random`` (→ None) or a path to vgg19-dcbb9e9d.pth."""
    if value == "random":
        return None
    if value != "imagenet" and not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"{value}: not 'imagenet', 'random' or an existing checkpoint file")
    return value


WORKERS_HELP = "processes that read and decode images ahead of the model (default 0: the main process)"
# Constructor arguments with flags of their own, not generated from the signatures.
OWN_FLAGS = ("weights", "scoring", "seed", "device")
SCORING_FIELDS = tuple(ScoringSettings.__dataclass_fields__)


def parse_value(text: str, annotation: Any) -> Any:
    """A command-line string as a value of the type hint ``annotation`` (e.g. ``int | str | None``).

    Tried in this order, among the types the hint allows: ``none`` → None; ``true`` / ``false``
    → bool; an int; a float; for a sequence hint (``tuple[str, ...]``, ``Sequence[int]``) a
    comma-separated list, each item parsed as the element type; the string itself. Anything
    else raises a ValueError naming the value and the types expected.
    """
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    allowed = typing.get_args(annotation) if union else (annotation,)
    word = text.strip().lower()
    if type(None) in allowed and word == "none":
        return None
    if bool in allowed and word in ("true", "false"):
        return word == "true"
    for kind in (int, float):
        if kind in allowed:
            try:
                return kind(text)
            except ValueError:
                pass
    for kind in allowed:
        if typing.get_origin(kind) in (tuple, list, collections.abc.Sequence):
            return [parse_value(item.strip(), typing.get_args(kind)[0]) for item in text.split(",")]
    if str in allowed:
        return text
    names = {type(None): "none", bool: "true or false"}
    expected = " or ".join(names.get(kind, getattr(kind, "__name__", str(kind))) for kind in allowed)
    raise ValueError(f"{text!r} is not {expected}")


def _shown(value: Any) -> str:
    """A default as it would be typed on the command line (see :func:`parse_value`)."""
    if value is None or isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(_shown(item) for item in value)
    return str(value)


def _constructor_arguments(classes: dict[str, type]) -> dict[str, dict[str, inspect.Parameter]]:
    """Argument name → {model name: its constructor parameter}, for every argument but ``OWN_FLAGS``."""
    arguments: dict[str, dict[str, inspect.Parameter]] = {}
    for model, model_class in classes.items():
        for name, parameter in inspect.signature(model_class, eval_str=True).parameters.items():
            if name not in OWN_FLAGS:
                arguments.setdefault(name, {})[model] = parameter
    return arguments


def _argument_docs(model_class: type) -> dict[str, str]:
    """First sentence of each argument's entry in the ``Args:`` section of the class docstring, markup removed."""
    _, _, section = (inspect.getdoc(model_class) or "").partition("Args:\n")
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in section.splitlines():
        entry = re.fullmatch(r"    (\w[\w, ]*): (.*)", line)
        if entry:
            names = [name.strip() for name in entry.group(1).split(",")]
            docs.update({name: entry.group(2) for name in names})
        elif line.startswith("        "):
            docs.update({name: f"{docs[name]} {line.strip()}" for name in names})
        else:
            break
    plain = {name: re.sub(r":\w+:`([^`]*)`", r"\1", text).replace("``", "") for name, text in docs.items()}
    return {name: text.split(". ")[0].rstrip(".") + "." for name, text in plain.items()}


def _argument_help(name: str, parameters: dict[str, inspect.Parameter], docs: dict[str, str]) -> str:
    """``<first sentence> (models; default value)``, or one default per group of models when they differ."""
    by_default: dict[str, list[str]] = {}
    for model, parameter in parameters.items():
        by_default.setdefault(_shown(parameter.default), []).append(model)
    if len(by_default) == 1:
        [(default, models)] = by_default.items()
        where = f"{', '.join(models)}; default {default}"
    else:
        where = "; ".join(f"{', '.join(models)}: default {default}" for default, models in by_default.items())
    text = f"{docs[name]} ({where})" if name in docs else f"({where})"
    return text.replace("%", "%%")


def _add_scoring_flags(parser: argparse.ArgumentParser, names: tuple[str, ...], title: str) -> None:
    """One flag per :class:`ScoringSettings` field in ``names``, with its documented meaning and default."""
    group = parser.add_argument_group("scoring arguments", title)
    docs, defaults = _argument_docs(ScoringSettings), ScoringSettings()
    for name in names:
        help_text = f"{docs.get(name, '')} (default {_shown(getattr(defaults, name))})".strip()
        group.add_argument(f"--{name.replace('_', '-')}", default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))


def _scoring_options(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The scoring flags given, parsed by the fields' type hints."""
    hints = typing.get_type_hints(ScoringSettings)
    options = {}
    for name in names:
        if name in vars(args):
            try:
                options[name] = parse_value(vars(args)[name], hints[name])
            except ValueError as error:
                raise ValueError(f"--{name.replace('_', '-')}: {error}") from None
    return options


#: Flags of every command (given as ``parents=`` to each sub-parser).
COMMON_FLAGS = argparse.ArgumentParser(add_help=False)
COMMON_FLAGS.add_argument("--debug", action="store_true", help="on an error, show the Python traceback")

#: Exit status of a command refused for its input or files, and of one stopped by a signal.
EXIT_ERROR = 2
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
EXPECTED_ERRORS = (ValueError, TypeError, OSError, RuntimeError, ImportError, MemoryError)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same clean-up runs."""


def build_parser(classes: dict[str, type] | None = None) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The ``dfr`` parser with ``fit`` and ``predict``, and its sub-command group.

    ``classes`` maps each ``--model`` name of ``fit`` to its model class (default: DFR only);
    every constructor argument of those classes becomes a flag of ``fit`` (see :func:`run_fit`).
    """
    classes = classes or {"dfr": DFR}
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
    fit.add_argument("--weights", type=_weights, default=argparse.SUPPRESS,
                     help="DFR's and the feature heads' backbone weights: imagenet (default; for VGG19 downloaded "
                          "once and cached), random (tests only) or a checkpoint path")
    model_flags = fit.add_argument_group(
        "model arguments",
        "The chosen model's constructor arguments (Python: help(dfr.DFR), help(baselines.CAE), ...); an\n"
        "omitted flag takes the constructor's default. Values: numbers, true/false, none, words, and\n"
        "comma-separated lists (--layers relu1_1,relu2_1).")
    docs: dict[str, str] = {}
    for model_class in reversed(classes.values()):
        docs.update(_argument_docs(model_class))  # the first model that documents an argument wins
    for name, parameters in _constructor_arguments(classes).items():
        model_flags.add_argument(f"--{name.replace('_', '-')}", default=argparse.SUPPRESS,
                                 help=_argument_help(name, parameters, docs))
    _add_scoring_flags(fit, SCORING_FIELDS, "scoring settings (stored in the model file; see dfr.ScoringSettings)")
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
    _add_scoring_flags(predict, AFTER_FIT, "scoring settings that replace the model's for this run (default: "
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


def run_fit(args: argparse.Namespace, classes: dict[str, type] | None = None) -> None:
    """``dfr fit``; ``classes`` maps each ``--model`` name to its model class, as for :func:`build_parser`.

    Each constructor-argument flag given is parsed by :func:`parse_value` with the chosen
    model's type hint and passed to its constructor; one the model does not take is refused.
    """
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out}: file exists (use --overwrite to replace it)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: no such folder for the model file")
    classes = classes or {"dfr": DFR}
    parameters = inspect.signature(classes[args.model], eval_str=True).parameters
    options = {}
    for name in [*_constructor_arguments(classes), "weights"]:
        if name not in vars(args):
            continue
        flag, value = f"--{name.replace('_', '-')}", vars(args)[name]
        if name not in parameters:
            raise ValueError(f"{flag} does not apply to {args.model}")
        try:
            options[name] = value if name == "weights" else parse_value(value, parameters[name].annotation)
        except ValueError as error:
            raise ValueError(f"{flag}: {error}") from None
    scoring = ScoringSettings(**_scoring_options(args, SCORING_FIELDS))
    model = classes[args.model](scoring=scoring, seed=args.seed, device=args.device, **options)
    model.workers = args.workers
    train = _fit_inputs(model, args.train)
    validation = _fit_inputs(model, args.validation) if args.validation else None
    regions = {}
    if model.takes_region_masks:
        regions = {"region_masks": _region_masks(args.region_masks),
                   "validation_region_masks": _region_masks(args.validation_region_masks)}
    elif args.region_masks or args.validation_region_masks:
        raise ValueError("--region-masks and --validation-region-masks apply only to image models, "
                         f"not to {args.model}")
    started = time.perf_counter()
    model.fit(train, validation=validation, **regions)
    model.save(out, overwrite=args.overwrite)
    unit = "clips" if model.input_kind == "clips" else "images"
    if distributed.is_main():
        print(f"fitted {type(model).__name__} on {len(model._dataset(train))} {unit} in "
              f"{time.perf_counter() - started:.0f} s (world size {model.world_size_}): "
              f"threshold {model.threshold_:.6g} (target FPR {model.scoring.target_fpr}); wrote {out}")


def run_predict(args: argparse.Namespace) -> None:
    import dfr
    from dfr.outputs import check_output_folder

    check_output_folder(args.out, args.overwrite)
    model = dfr.load(args.model, device=args.device)
    model.workers = args.workers
    if args.region_masks and not model.takes_region_masks:
        raise ValueError(f"--region-masks applies only to image models, not to {type(model).__name__}")
    scoring = _scoring_options(args, AFTER_FIT)
    if model.input_kind == "clips":
        _predict_clips(model, args, scoring)
    else:
        _predict_images(model, args, _region_masks(args.region_masks), scoring)


def _predict_images(model, args: argparse.Namespace, region_masks: Any, scoring: dict) -> None:
    """Predict and write one image at a time (``predict_iter``), so memory stays flat however
    many there are; under torch.distributed each process takes every N-th image."""
    from tqdm.auto import tqdm

    from dfr.io import image_sources
    from dfr.outputs import PredictionWriter, unique_stems

    sources, names = [], []
    for item in args.inputs:
        item_sources, item_names = image_sources(item)
        sources += item_sources
        names += item_names
    if isinstance(region_masks, (str, Path)):
        region_masks, _ = image_sources(region_masks)  # a folder: one mask per image, in order
        if len(region_masks) != len(sources):
            raise ValueError(f"{args.region_masks}: {len(region_masks)} region masks for {len(sources)} images")
    mine = distributed.shard(len(sources))
    if region_masks is not None and not isinstance(region_masks, np.ndarray):
        region_masks = [region_masks[i] for i in mine]
    stems = unique_stems(names)
    flagged = 0
    with PredictionWriter(args.out, model.heatmap_range, overwrite=args.overwrite) as writer:
        if len(mine):
            results = model.predict_iter([sources[i] for i in mine], region_masks=region_masks, scoring=scoring)
            progress = tqdm(results, total=len(mine), desc="predict", unit="image", disable=None if distributed.is_main() else True)
            for index, result in zip(mine, progress):
                writer.add(result, stems[index], order=int(index))
                flagged += len(result.boxes) > 0
    flagged = int(distributed.all_reduce(np.array([flagged]), "sum")[0])
    if distributed.is_main():
        print(f"{len(sources)} images, {flagged} with at least one box (threshold {model.threshold_:.6g}; "
              f"world size {distributed.world_size()}); wrote {writer.out}")


def _predict_clips(model, args: argparse.Namespace, scoring: dict) -> None:
    """Predict and write one clip at a time: its frames' files, then its video; under
    torch.distributed each process takes every N-th clip."""
    from dfr.io import list_clip_folders, list_images
    from dfr.outputs import PredictionWriter, unique_stems, write_clip_video

    folders = [folder for item in args.inputs for folder in list_clip_folders(item)]
    frame_names = [[path.name for path in list_images(folder)] for folder in folders]
    stems = iter(unique_stems([f"{folder.name}_{name}" for folder, names in zip(folders, frame_names) for name in names]))
    frame_stems = [[next(stems) for _ in names] for names in frame_names]
    clip_stems = unique_stems([folder.name for folder in folders])
    frames = flagged = 0
    with PredictionWriter(args.out, model.heatmap_range, overwrite=args.overwrite) as writer:
        for clip in distributed.shard(len(folders)):
            results = list(model.predict_iter([folders[clip]], scoring=scoring))
            for index, (result, stem) in enumerate(zip(results, frame_stems[clip])):
                writer.add(result, stem, order=(int(clip), index))
            write_clip_video(writer.staging / "videos" / f"{clip_stems[clip]}.mp4", [r.image for r in results],
                             [r.anomaly_map for r in results], np.array([r.score for r in results]),
                             model.threshold_, model.heatmap_range)
            frames += len(results)
            flagged += sum(len(result.boxes) > 0 for result in results)
    frames, flagged = (int(total) for total in distributed.all_reduce(np.array([frames, flagged]), "sum"))
    if distributed.is_main():
        print(f"{len(folders)} clips ({frames} frames), {flagged} with at least one box "
              f"(threshold {model.threshold_:.6g}; world size {distributed.world_size()}); wrote {writer.out}")


def _fit_inputs(model, item: str) -> str | list[str]:
    """What ``fit`` reads from a command-line path: the path itself (images, read as they are
    reached), or for clip models the list of its clip folders."""
    from dfr.io import list_clip_folders

    if model.input_kind != "clips":
        return item
    return [str(folder) for folder in list_clip_folders(item)]


def _region_masks(value: str | None):
    """A mask file → one (H, W) array shared by every image; a folder stays a path; None stays None."""
    from dfr.io import read_image

    if value is None or Path(value).is_dir():
        return value
    return read_image(value)[:, :, 0]


def run_export(args: argparse.Namespace) -> None:
    import dfr

    model = dfr.load(args.model, device="cpu")
    path = model.export_onnx(args.out, overwrite=args.overwrite)
    spec = model._input_spec()
    print(f"exported {type(model).__name__} (threshold {model.threshold_:.6g}) to {path}: input "
          f"{spec['shape']} ({spec['layout']}, None: free), output anomaly_map "
          f"({model._output_layout}); run it with 'dfr predict {path} ...'")


def run_stream(args: argparse.Namespace) -> None:
    import dfr
    from dfr.outputs import check_output_folder
    from dfr.stream import open_source, read_frames, source_fps, stream_to_folder

    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {args.max_frames}")
    check_output_folder(args.out, args.overwrite)
    model = dfr.load(args.model, device=args.device)
    capture, live = open_source(args.source)
    fps = source_fps(capture)
    try:  # Ctrl-C and SIGTERM (see run) end the stream and finish its files
        summary = stream_to_folder(model, read_frames(capture, live=live, realtime=args.realtime), args.out, fps=fps,
                                   overwrite=args.overwrite, max_frames=args.max_frames)
    finally:
        capture.release()
    print(f"{summary['frames']} frames ({summary['skipped']} skipped, {summary['anomalous']} with an anomaly) in "
          f"{summary['seconds']:.1f} s: {summary['frames_per_second']:.1f} frames/s"
          f"{' (interrupted)' if summary.get('interrupted') else ''}; wrote overlay.mp4 and frames.jsonl to {args.out}")


RUNNERS = {"fit": run_fit, "predict": run_predict, "export": run_export, "stream": run_stream}


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
    """``fit``, ``predict``, ``export`` and ``stream``; the installed ``dfr`` command adds ``bench``,
    ``evaluate`` and ``demo``."""
    parser, _ = build_parser()
    return run(parser, RUNNERS, argv)


if __name__ == "__main__":
    sys.exit(main())
