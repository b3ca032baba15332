"""The model commands: ``dfr fit``, ``predict``, ``export`` and ``stream``, mirroring the Python API."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from dfr import distributed
from dfr.api.model import load
from dfr.api.registry import list_models, model_class_of
from dfr.cli.arguments import (
    SCORING_FIELDS,
    constructor_arguments,
    parse_value,
    region_masks_option,
    scoring_options,
)
from dfr.data.io import image_sources, list_clip_folders, list_images
from dfr.deploy.stream import open_source, read_frames, source_fps, stream_to_folder
from dfr.outputs.files import check_output_folder, unique_stems
from dfr.outputs.pictures import write_clip_video
from dfr.outputs.writer import PredictionWriter
from dfr.scoring import AFTER_FIT, ScoringSettings


def registered_classes() -> dict[str, type]:
    """Model name → class, for every registered model (``dfr fit --model``)."""
    return {name: model_class_of(name) for name in list_models()}


def run_fit(args: argparse.Namespace) -> None:
    """``dfr fit``: the registered model ``--model`` built from the flags, fitted, saved.

    Each constructor-argument flag given is parsed by :func:`parse_value` with the chosen
    model's type hint and passed to its constructor; one the model does not take is refused.
    """
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out}: file exists (use --overwrite to replace it)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: no such folder for the model file")
    model_class = model_class_of(args.model)
    parameters = model_class.parameters(hints=True)
    options = {}
    for name in [*constructor_arguments(registered_classes()), "weights"]:
        if name not in vars(args):
            continue
        flag, value = f"--{name.replace('_', '-')}", vars(args)[name]
        if name not in parameters:
            raise ValueError(f"{flag} does not apply to {args.model}")
        try:
            options[name] = value if name == "weights" else parse_value(value, parameters[name].annotation)
        except ValueError as error:
            raise ValueError(f"{flag}: {error}") from None
    scoring = ScoringSettings(**scoring_options(args, SCORING_FIELDS))
    model = model_class(scoring=scoring, seed=args.seed, device=args.device, **options)
    model.workers = args.workers
    train = fit_inputs(model, args.train)
    validation = fit_inputs(model, args.validation) if args.validation else None
    regions = {}
    if model.takes_region_masks:
        regions = {"region_masks": region_masks_option(args.region_masks),
                   "validation_region_masks": region_masks_option(args.validation_region_masks)}
    elif args.region_masks or args.validation_region_masks:
        raise ValueError("--region-masks and --validation-region-masks apply only to image models, "
                         f"not to {args.model}")
    started = time.perf_counter()
    model.fit(train, validation=validation, **regions)
    model.save(out, overwrite=args.overwrite)
    unit = "clips" if model.input_kind == "clips" else "images"
    count = len(train) if model.input_kind == "clips" else len(image_sources(train)[0])
    if distributed.is_main():
        print(f"fitted {type(model).__name__} on {count} {unit} in "
              f"{time.perf_counter() - started:.0f} s (world size {model.world_size_}): "
              f"threshold {model.threshold_:.6g} (target FPR {model.scoring.target_fpr}); wrote {out}")


def run_predict(args: argparse.Namespace) -> None:
    """``dfr predict``: a saved model on images or clips; maps, heatmaps, masks, overlays, boxes and scores written to ``--out``."""
    check_output_folder(args.out, args.overwrite)
    model = load(args.model, device=args.device)
    model.workers = args.workers
    if args.region_masks and not model.takes_region_masks:
        raise ValueError(f"--region-masks applies only to image models, not to {type(model).__name__}")
    scoring = scoring_options(args, AFTER_FIT)
    if model.input_kind == "clips":
        _predict_clips(model, args, scoring)
    else:
        _predict_images(model, args, region_masks_option(args.region_masks), scoring)


def _predict_images(model, args: argparse.Namespace, region_masks: Any, scoring: dict) -> None:
    """Predict and write one image at a time (``predict_iter``), so memory stays flat however
    many there are; under torch.distributed each process takes every N-th image."""
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


def fit_inputs(model, item: str) -> str | list[str]:
    """What ``fit`` reads from a command-line path: the path itself (images, read as they are
    reached), or for clip models the list of its clip folders."""
    if model.input_kind != "clips":
        return item
    return [str(folder) for folder in list_clip_folders(item)]


def run_export(args: argparse.Namespace) -> None:
    """``dfr export``: a saved model written as one ONNX graph."""

    model = load(args.model, device="cpu")
    path = model.export_onnx(args.out, overwrite=args.overwrite)
    spec = model.input_spec()
    print(f"exported {type(model).__name__} (threshold {model.threshold_:.6g}) to {path}: input "
          f"{spec['shape']} ({spec['layout']}, None: free), output anomaly_map "
          f"({model.output_layout}); run it with 'dfr predict {path} ...'")


def run_stream(args: argparse.Namespace) -> None:
    """``dfr stream``: a saved model on a video file, camera or stream URL; ``overlay.mp4`` and ``frames.jsonl``."""
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {args.max_frames}")
    check_output_folder(args.out, args.overwrite)
    model = load(args.model, device=args.device)
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
