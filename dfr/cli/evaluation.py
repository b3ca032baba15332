"""The evaluation commands: ``dfr bench``, ``evaluate`` and ``demo`` (:mod:`dfr.evaluation`)."""
from __future__ import annotations

import argparse
import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

from dfr import distributed
from dfr.api.model import load
from dfr.cli.arguments import COMMON_FLAGS
from dfr.data import synthetic
from dfr.evaluation.models import DEMO_MODELS, bench_models
from dfr.evaluation.report import write_reports
from dfr.evaluation.suite import evaluate_and_save, run_suite
from dfr.evaluation.tasks import mvtec_tasks, pool_task, ucsd_task
from dfr.models.backbones.vgg import imagenet_cache_path
from dfr.outputs.files import check_output_folder, output_lock, staged_folder

DATASETS = ("mvtec", "ucsd", "pool")


def add_commands(commands: Any) -> None:
    """Add ``bench``, ``evaluate`` and ``demo`` to the ``dfr`` parser's sub-commands."""
    bench = commands.add_parser(
        "bench", parents=[COMMON_FLAGS],
        help="run the benchmark suite on a dataset on disk; write tables, JSON, plots, predictions",
        epilog="example:\n  dfr bench --dataset mvtec --root data/mvtec_ad --categories bottle,grid --models dfr,cae --out bench/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _dataset_flags(bench)
    bench.add_argument("--models", default="dfr", help="comma-separated registered models (dfr.list_models()); "
                       "a model on a backbone also as <name>-effnet, on the offline EfficientNet-Lite0 ImageNet weights "
                       "(default dfr)")
    _common(bench)

    evaluate = commands.add_parser(
        "evaluate", parents=[COMMON_FLAGS],
        help="a saved model (.dfr or .onnx) on a labelled test set: the metrics, report and predictions "
                         "of dfr bench, without fitting",
        epilog="example:\n  dfr evaluate bottle.dfr --dataset mvtec --root data/mvtec_ad --categories bottle --out eval/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("model", help="model file written by 'dfr fit' or 'dfr export'")
    _dataset_flags(evaluate)
    evaluate.add_argument("--seed", type=int, default=0, help="pool: seed of the train/test split, as given to "
                          "'dfr bench' (default 0)")
    evaluate.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, …")
    evaluate.add_argument("--out", required=True, help="output folder (must be empty or new)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")

    demo = commands.add_parser(
        "demo", parents=[COMMON_FLAGS],
        help="write small synthetic MVTec/UCSD/pool sets and run the suite on them (CPU, minutes)",
        epilog="example:\n  dfr demo --out demo-output", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--models", default=",".join(DEMO_MODELS),
                      help=f"comma-separated, as for bench (default {','.join(DEMO_MODELS)})")
    _common(demo, default_out="demo-output")


def _dataset_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, required=True, help="layout of --root (see docs/benchmarks.md)")
    parser.add_argument("--root", required=True,
                        help="mvtec: folder of categories (or one category); ucsd: the UCSDped1 or UCSDped2 folder; "
                             "pool: folder with images/ and annotations")
    parser.add_argument("--categories", help="mvtec: comma-separated categories (default: all found)")
    parser.add_argument("--pool-format", choices=["yolo", "voc", "coco"], help="pool: annotation format when several exist")
    parser.add_argument("--pool-split", choices=["object_free", "inpaint"], default="object_free",
                        help="pool: train on swimmer-free images, or inpaint the swimmers of some images (the test "
                             "split depends on it)")


def _tasks(args: argparse.Namespace) -> list:
    """The tasks of ``--dataset`` under ``--root``."""

    if args.dataset == "mvtec":
        return mvtec_tasks(args.root, args.categories.split(",") if args.categories else None)
    if args.dataset == "ucsd":
        return [ucsd_task(args.root)]
    return [pool_task(args.root, format=args.pool_format, method=args.pool_split, seed=args.seed)]


def _common(parser: argparse.ArgumentParser, default_out: str | None = None) -> None:
    parser.add_argument("--out", required=default_out is None, default=default_out, help="output folder")
    parser.add_argument("--vgg-weights", default="auto",
                        help="VGG19 weights for DFR: auto (ImageNet if already in torch's cache, else random; never "
                             "downloads), imagenet, random, or a checkpoint path")
    parser.add_argument("--seed", type=int, default=0)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue an interrupted run in --out, keeping finished runs")
    group.add_argument("--overwrite", action="store_true", help="delete --out and start over")


def _prepare(args: argparse.Namespace, lock: contextlib.ExitStack) -> Path:
    """The output folder, locked (:func:`dfr.outputs.output_lock`, held until ``lock`` closes),
    checked and (with --overwrite) emptied by rank 0."""
    out = Path(args.out)
    error = None
    if distributed.is_main():
        try:
            lock.enter_context(output_lock(out))
            if out.exists() and any(out.iterdir()) and not (args.resume or args.overwrite):
                raise FileExistsError(f"{out}: folder is not empty (use --resume to continue it or --overwrite to "
                                      "start over)")
            if args.overwrite and out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True, exist_ok=True)
        except OSError as caught:
            error = caught
    distributed.check_all(error)
    return out


def _vgg_weights(value: str) -> str | None:
    if value == "auto":
        cached = imagenet_cache_path()
        return str(cached) if cached.is_file() else None
    return None if value == "random" else value


def _models(names: str, vgg_weights: str | None, **options: Any) -> list:
    """The bench models named in ``--models`` (:func:`dfr.evaluation.models.bench_models`)."""
    return bench_models([name.strip() for name in names.split(",") if name.strip()], vgg_weights, **options)


def run_bench(args: argparse.Namespace) -> None:
    """``dfr bench``: fit and evaluate the ``--models`` on every task of the dataset; tables, JSON, plots and predictions."""
    models = _models(args.models, _vgg_weights(args.vgg_weights), dataset=args.dataset)
    with contextlib.ExitStack() as lock:
        out = _prepare(args, lock)
        results = run_suite(_tasks(args), models, out, seed=args.seed)
        if distributed.is_main():
            write_reports(results, out, seed=args.seed, settings=vars(args))
    if distributed.is_main():
        print((out / "results.md").read_text())
        print(f"wrote results.json, results.md, plots/, index.md and predictions to {out} "
              f"(world size {distributed.world_size()})")


def run_evaluate(args: argparse.Namespace) -> None:
    """``dfr evaluate``: the saved model on every task of the dataset, reported as ``dfr bench`` does."""
    out = check_output_folder(args.out, args.overwrite)
    model = load(args.model, device=args.device)
    tasks = _tasks(args)
    name = Path(args.model).name
    label = f"{type(model).__name__} ({name})"
    if not distributed.is_main():
        return
    with output_lock(out):
        check_output_folder(out, args.overwrite)
        with staged_folder(out) as staging, distributed.local():
            results = [evaluate_and_save(task, model, name, label, staging / "runs" / task.dataset / task.name / name)
                       for task in tasks]
            write_reports(results, staging, seed=args.seed, settings=vars(args))
    print((out / "results.md").read_text())
    print(f"wrote results.json, results.md, plots/, index.md and predictions to {out}")


def run_demo(args: argparse.Namespace) -> None:
    """``dfr demo``: small synthetic MVTec, pool and UCSD sets written into ``--out``, and the suite on them."""
    weights = _vgg_weights(args.vgg_weights)
    models = _models(args.models, weights, skip_unavailable=True)
    with contextlib.ExitStack() as lock:
        _demo(args, models, weights, _prepare(args, lock))


def _demo(args: argparse.Namespace, models: list, weights: str | None, out: Path) -> None:
    """The demo's data, suite and reports in the prepared ``out``."""
    if weights is None and distributed.is_main():
        print("demo: DFR uses VGG19 with random weights (no ImageNet checkpoint cached); fine for a demo only")
    started = time.perf_counter()
    data = out / "data"
    if distributed.is_main() and not (data / "ucsd" / "UCSDped2").is_dir():
        synthetic.write_mvtec_like(data / "mvtec", categories=("brick", "grass", "gravel"), seed=args.seed, overwrite=True)
        synthetic.write_pool_like(data / "pool", seed=args.seed, overwrite=True)
        synthetic.write_ucsd_like(data / "ucsd", name="UCSDped2", seed=args.seed, overwrite=True)
    distributed.barrier()
    tasks = mvtec_tasks(data / "mvtec")
    tasks += [pool_task(data / "pool", format="coco", seed=args.seed)]
    tasks += [ucsd_task(data / "ucsd" / "UCSDped2")]
    results = run_suite(tasks, models, out, seed=args.seed)
    if not distributed.is_main():
        return
    write_reports(results, out, seed=args.seed, settings=vars(args))
    print((out / "results.md").read_text())
    print(f"demo: {len(results)} runs in {time.perf_counter() - started:.0f} s; open {out / 'index.md'}")


RUNNERS = {"bench": run_bench, "evaluate": run_evaluate, "demo": run_demo}
