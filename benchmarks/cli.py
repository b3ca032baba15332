"""The installed ``dfr`` command: ``fit``, ``predict`` and ``export`` from :mod:`dfr.cli`, plus
``bench``, ``evaluate`` and ``demo``."""
from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from functools import partial
from pathlib import Path

from dfr import cli as model_cli
from dfr import distributed

DATASETS = ("mvtec", "ucsd", "pool")
DEMO_MODELS = "dfr,dfr-effnet,pca-residual-effnet,memory-bank-effnet,cae,stae,convlstm,poolae"


def fit_classes() -> dict[str, type]:
    """``dfr fit --model`` name → model class: DFR and every baseline."""
    import baselines
    from dfr import DFR

    return {"dfr": DFR, "pca-residual": baselines.PCAResidual, "memory-bank": baselines.PatchMemoryBank,
            "cae": baselines.CAE, "stae": baselines.STAE, "convlstm": baselines.ConvLSTMAE, "poolae": baselines.PoolAE}


def add_commands(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench", parents=[model_cli.COMMON_FLAGS],
        help="run the benchmark suite on a dataset on disk; write tables, JSON, plots, predictions",
        epilog="example:\n  dfr bench --dataset mvtec --root data/mvtec_ad --categories bottle,grid --models dfr,cae --out bench/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _dataset_flags(bench)
    bench.add_argument("--models", default="dfr", help="comma-separated: dfr, dfr-effnet, pca-residual[-effnet], "
                       "memory-bank[-effnet], cae, stae, convlstm, poolae")
    _common(bench)

    evaluate = commands.add_parser(
        "evaluate", parents=[model_cli.COMMON_FLAGS],
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
        "demo", parents=[model_cli.COMMON_FLAGS],
        help="write small synthetic MVTec/UCSD/pool sets and run the suite on them (CPU, minutes)",
        epilog="example:\n  dfr demo --out demo-output", formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--models", default=DEMO_MODELS, help=f"comma-separated (default {DEMO_MODELS})")
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
    from benchmarks import tasks as task_readers

    if args.dataset == "mvtec":
        return task_readers.mvtec_tasks(args.root, args.categories.split(",") if args.categories else None)
    if args.dataset == "ucsd":
        return [task_readers.ucsd_task(args.root)]
    return [task_readers.pool_task(args.root, format=args.pool_format, method=args.pool_split, seed=args.seed)]


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
    from dfr.outputs import output_lock

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
    from dfr.backbones.vgg import imagenet_cache_path

    if value == "auto":
        cached = imagenet_cache_path()
        return str(cached) if cached.is_file() else None
    return None if value == "random" else value


def _specs(names: str, vgg_weights: str | None, available_only: bool = False, dataset: str | None = None):
    """The named models; with ``available_only``, known models that cannot run here are skipped;
    with ``dataset``, a model that does not apply to it is an error naming those that do."""
    from benchmarks.models import KNOWN_MODELS, model_specs

    specs = model_specs(vgg_weights)
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    if not wanted:
        raise ValueError(f"--models names no model; available: {sorted(specs)}")
    unknown = [name for name in wanted if name not in (KNOWN_MODELS if available_only else specs)]
    if unknown:
        raise ValueError(f"unknown or unavailable models {unknown}; available: {sorted(specs)}")
    if dataset is not None:
        misfits = [name for name in wanted if dataset not in specs[name].datasets]
        if misfits:
            fitting = sorted(name for name, spec in specs.items() if dataset in spec.datasets)
            raise ValueError(f"models {misfits} do not apply to {dataset} data; models that do: {', '.join(fitting)}")
    return [specs[name] for name in wanted if name in specs]


def run_bench(args: argparse.Namespace) -> None:
    from benchmarks.report import write_reports
    from benchmarks.suite import run_suite

    specs = _specs(args.models, _vgg_weights(args.vgg_weights), dataset=args.dataset)
    with contextlib.ExitStack() as lock:
        out = _prepare(args, lock)
        results = run_suite(_tasks(args), specs, out, seed=args.seed)
        if distributed.is_main():
            write_reports(results, out, seed=args.seed, settings=vars(args))
    if distributed.is_main():
        print((out / "results.md").read_text())
        print(f"wrote results.json, results.md, plots/, index.md and predictions to {out} "
              f"(world size {distributed.world_size()})")


def run_evaluate(args: argparse.Namespace) -> None:
    """``dfr evaluate``: the saved model on every task of the dataset, reported as ``dfr bench`` does."""
    import tempfile

    import dfr
    from benchmarks.report import write_reports
    from benchmarks.suite import evaluate_and_save
    from dfr.outputs import check_output_folder, output_lock, replace_folder

    out = check_output_folder(args.out, args.overwrite)
    model = dfr.load(args.model, device=args.device)
    tasks = _tasks(args)
    name = Path(args.model).name
    label = f"{type(model).__name__} ({name})"
    if not distributed.is_main():
        return
    with output_lock(out):
        check_output_folder(out, args.overwrite)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        try:
            with distributed.local():
                results = [evaluate_and_save(task, model, name, label, staging / "runs" / task.dataset / task.name / name)
                           for task in tasks]
                write_reports(results, staging, seed=args.seed, settings=vars(args))
            replace_folder(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    print((out / "results.md").read_text())
    print(f"wrote results.json, results.md, plots/, index.md and predictions to {out}")


def run_demo(args: argparse.Namespace) -> None:
    weights = _vgg_weights(args.vgg_weights)
    specs = _specs(args.models, weights, available_only=True)
    with contextlib.ExitStack() as lock:
        _demo(args, specs, weights, _prepare(args, lock))


def _demo(args: argparse.Namespace, specs: list, weights: str | None, out: Path) -> None:
    """The demo's data, suite and reports in the prepared ``out``."""
    from benchmarks import datasets
    from benchmarks import tasks as task_readers
    from benchmarks.report import write_reports
    from benchmarks.suite import run_suite

    if weights is None and distributed.is_main():
        print("demo: DFR uses VGG19 with random weights (no ImageNet checkpoint cached); fine for a demo only")
    started = time.perf_counter()
    data = out / "data"
    if distributed.is_main() and not (data / "ucsd" / "UCSDped2").is_dir():
        datasets.write_mvtec_like(data / "mvtec", categories=("brick", "grass", "gravel"), seed=args.seed, overwrite=True)
        datasets.write_pool_like(data / "pool", seed=args.seed, overwrite=True)
        datasets.write_ucsd_like(data / "ucsd", name="UCSDped2", seed=args.seed, overwrite=True)
    distributed.barrier()
    tasks = task_readers.mvtec_tasks(data / "mvtec")
    tasks += [task_readers.pool_task(data / "pool", format="coco", seed=args.seed)]
    tasks += [task_readers.ucsd_task(data / "ucsd" / "UCSDped2")]
    results = run_suite(tasks, specs, out, seed=args.seed)
    if not distributed.is_main():
        return
    write_reports(results, out, seed=args.seed, settings=vars(args))
    print((out / "results.md").read_text())
    print(f"demo: {len(results)} runs in {time.perf_counter() - started:.0f} s; open {out / 'index.md'}")


def main(argv: list[str] | None = None) -> int:
    classes = fit_classes()
    parser, commands = model_cli.build_parser(classes)
    add_commands(commands)
    runners = {**model_cli.RUNNERS, "fit": partial(model_cli.run_fit, classes=classes), "bench": run_bench,
               "evaluate": run_evaluate, "demo": run_demo}
    return model_cli.run(parser, runners, argv)


if __name__ == "__main__":
    sys.exit(main())
