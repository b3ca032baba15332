"""Suite reports: ``results.json``, ``results.md`` (tables), plots and an index page."""
from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dfr.version import __version__

# Columns of the tables, per dataset: (metric key, heading).
COLUMNS = {
    "mvtec": [("pixel_auroc", "pixel AUROC"), ("pro_auc", "PRO-AUC"), ("image_auroc", "image AUROC"),
              ("box_recall_iou30", "box R@0.3"), ("box_f1", "box F1"), ("box_ap50", "box AP50")],
    "ucsd": [("frame_auc_micro", "frame AUC micro"), ("eer_micro", "EER micro"),
             ("frame_auc_macro", "frame AUC macro"), ("eer_macro", "EER macro"),
             ("frame_auc_micro_clip_normalised", "frame AUC micro, clip-normalised*"),
             ("pixel_auroc", "pixel AUROC"), ("pro_auc", "PRO-AUC")],
    "pool": [("box_precision", "box P"), ("box_recall", "box R"), ("box_f1", "box F1"), ("box_ap50", "box AP50"),
             ("box_ap50_95", "box AP50:95"), ("box_count_error", "count error"),
             ("pixel_auroc", "pixel AUROC (box masks)")],
}
PROTOCOL = {
    "threshold": "pixel threshold at target FPR 0.005 on held-out normal training data (seeded split)",
    "pro_auc": "MVTec AD definition, FPR limit 0.3, normalised by 0.3, at ground-truth mask resolution",
    "video": "frame AUC/EER micro (all frames of all clips) and macro (mean over clips with both classes); "
             "'clip-normalised' = per-clip min-max of scores, which leaks test statistics",
    "boxes": "dfr.scoring.detect with each model's scoring settings; COCO-style greedy matching by score; "
             "P, R, F1 at IoU 0.5 over all predicted boxes; AP50, AP50:95 with COCO's 101-point interpolation; "
             "R@0.3 = recall at IoU 0.3; count error = mean |predicted - true boxes| per image; "
             "MVTec-style true boxes = connected components of the masks",
}


def write_reports(results: list[dict[str, Any]], out: Path, *, seed: int, settings: dict[str, Any]) -> None:
    """Write results.json, results.md, plots/ and index.md for ``results``."""
    record = {
        "dfr_version": __version__, "torch_version": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "machine_description": machine_description(),
        "date": datetime.date.today().isoformat(), "seed": seed, "settings": settings, "protocol": PROTOCOL, "runs": results,
    }
    (out / "results.json").write_text(json.dumps(record, indent=1, default=float))
    tables = results_markdown(results)
    (out / "results.md").write_text(tables)
    plots = write_plots(results, out)
    index = ["# dfr benchmark", "", f"dfr {__version__}, torch {torch.__version__}, seed {seed}.", "", tables, "## Plots", ""]
    index += [f"![{path.stem}]({path.relative_to(out).as_posix()})" for path in plots]
    examples = sorted(out.glob("runs/*/*/*/predictions/example.png"))
    if examples:
        index += ["", "## Examples: the test item with the largest true anomaly (predicted boxes green, true boxes cyan)", ""]
        index += [f"![{path.parents[1].relative_to(out / 'runs').as_posix()}]({path.relative_to(out).as_posix()})"
                  for path in examples]
    (out / "index.md").write_text("\n".join(index) + "\n")


def machine_description() -> str:
    """CPU cores and architecture, and the GPU if there is one, e.g. "2 CPU cores (x86_64), no GPU"."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), {gpu}"


def results_markdown(results: list[dict[str, Any]]) -> str:
    """One table per dataset and task: models x metrics, fit and predict time."""
    lines = []
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        columns = COLUMNS[dataset]
        for task in dict.fromkeys(r["task"] for r in results if r["dataset"] == dataset):
            runs = [r for r in results if r["dataset"] == dataset and r["task"] == task]
            lines += [f"### {dataset}: {task}", ""]
            lines.append("| model | " + " | ".join(h for _, h in columns) + " | fit s | predict s |")
            lines.append("|---" * (len(columns) + 3) + "|")
            for run in runs:
                values = [_format(run["metrics"].get(key)) for key, _ in columns]
                lines.append(f"| {run['label']} | " + " | ".join(values)
                             + f" | {_format_seconds(run['fit_seconds'], 0)} | {_format_seconds(run['predict_seconds'], 1)} |")
            notes = list(dict.fromkeys(note for run in runs for note in run["notes"]))
            notes += list(dict.fromkeys(run["metrics"]["pixel_evaluation"] for run in runs if "pixel_evaluation" in run["metrics"]))
            if dataset == "ucsd":
                notes.append("* per-clip min-max normalisation leaks test statistics; reported for comparison with papers only")
            lines += [""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def _format_seconds(seconds: float | None, decimals: int) -> str:
    """Seconds for the tables; "saved" where a saved model was evaluated (no fit here)."""
    return "saved" if seconds is None else f"{seconds:.{decimals}f}"


def _format(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def write_plots(results: list[dict[str, Any]], out: Path) -> list[Path]:
    """Per task: PRO and ROC curves of all models, training losses, per-frame scores (video)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    folder = out / "plots"
    folder.mkdir(exist_ok=True)
    written = []
    for key in dict.fromkeys((r["dataset"], r["task"]) for r in results):
        runs = [r for r in results if (r["dataset"], r["task"]) == key]
        curves = {r["model"]: np.load(out / "runs" / key[0] / key[1] / r["model"] / "curves.npz") for r in runs}
        figure, axes = pyplot.subplots(1, 3, figsize=(15, 4))
        for run in runs:
            data = curves[run["model"]]
            if "pro" in data:
                axes[0].plot(data["pro_fpr"], data["pro"], label=run["label"])
            if "roc_fpr" in data:
                axes[1].plot(data["roc_fpr"], data["roc_tpr"], label=run["label"])
            if run["training_loss"]:
                axes[2].plot(np.arange(1, len(run["training_loss"]) + 1), run["training_loss"], label=run["label"])
        if not any("roc_fpr" in data for data in curves.values()):
            axes[1].text(0.5, 0.5, "no ROC: the test set lacks\nnormal or anomalous items", ha="center", va="center")
        axes[0].axvline(0.3, color="grey", linestyle=":")
        axes[0].set(xlim=(0, 1), ylim=(0, 1), xlabel="FPR (normal pixels)", ylabel="PRO", title="PRO curve")
        axes[1].set(xlim=(0, 1), ylim=(0, 1), xlabel="FPR", ylabel="TPR", title="ROC (image / frame scores)")
        axes[2].set(xlabel="epoch", ylabel="training loss", title="training loss", yscale="log")
        for axis in axes:
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=7)
        figure.suptitle(f"{key[0]}: {key[1]}")
        figure.tight_layout()
        written.append(_save(figure, folder / f"{key[0]}_{key[1]}_curves.png", pyplot))
        if key[0] == "ucsd":
            written.append(_frame_scores_plot(runs, curves, folder / f"{key[0]}_{key[1]}_frame_scores.png", pyplot))
    return written


def _frame_scores_plot(runs, curves, path: Path, pyplot) -> Path:
    """Per-frame scores of every model (min-max scaled per model for display), anomalous frames shaded."""
    first = curves[runs[0]["model"]]
    labels, lengths = first["labels"].astype(bool), first["clip_lengths"]
    figure, axis = pyplot.subplots(figsize=(15, 3.5))
    for start, stop in _ranges(labels):
        axis.axvspan(start, stop, color="red", alpha=0.12, linewidth=0)
    for boundary in np.cumsum(lengths)[:-1]:
        axis.axvline(boundary, color="grey", linewidth=0.5)
    for run in runs:
        scores = curves[run["model"]]["scores"]
        span = scores.max() - scores.min()
        axis.plot((scores - scores.min()) / (span or 1.0), linewidth=0.8, label=run["label"])
    axis.set(xlabel="test frame (clips concatenated; grey lines separate clips)", ylabel="score (scaled for display)",
             title="per-frame scores; ground-truth anomalous frames shaded")
    axis.legend(fontsize=7)
    figure.tight_layout()
    return _save(figure, path, pyplot)


def _ranges(labels: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], labels.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def _save(figure, path: Path, pyplot) -> Path:
    figure.savefig(path, dpi=90)
    pyplot.close(figure)
    return path
