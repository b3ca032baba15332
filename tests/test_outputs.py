"""PredictionWriter: background writes, records on disk, and what a failure leaves behind."""
import csv
import json

import numpy as np
import pytest

from dfr.api.prediction import ItemPrediction
from dfr.outputs import files
from dfr.outputs import writer as writer_module
from dfr.outputs.writer import PredictionWriter


def _item(name: str, score: float = 0.0, boxes=((1, 2, 5, 6, 0.5),)) -> ItemPrediction:
    anomaly_map = np.linspace(0, 2, 64, dtype=np.float32).reshape(8, 8)
    return ItemPrediction(name, anomaly_map, score, anomaly_map > 1.0, np.asarray(boxes, float).reshape(-1, 5), 1.0,
                          np.full((8, 8, 3), 0.5, np.float32))


def test_every_result_is_written_and_the_summaries_keep_their_order(tmp_path):
    count = writer_module.WRITES_PENDING * 3  # more than may wait: add() waits for the oldest writes
    with PredictionWriter(tmp_path / "out", (0.0, 2.0)) as writer:
        for index in range(count):
            writer.add(_item(f"img_{index:03d}.png", score=index / 10), order=(0, index))
    out = tmp_path / "out"
    for sub in ("maps", "heatmaps", "masks", "overlays"):
        assert len(list((out / sub).iterdir())) == count
    np.testing.assert_array_equal(np.load(out / "maps" / "img_007.npy"), _item("x").anomaly_map)
    summary = json.loads((out / "boxes.json").read_text())
    assert summary["threshold"] == 1.0 and summary["heatmap_range"] == [0.0, 2.0]
    assert [image["name"] for image in summary["images"]] == [f"img_{index:03d}" for index in range(count)]
    assert summary["images"][3] == {"name": "img_003", "score": 0.3, "boxes": [[1.0, 2.0, 5.0, 6.0, 0.5]]}
    rows = list(csv.reader((out / "scores.csv").open()))
    assert rows[0] == ["name", "score", "boxes"] and rows[4] == ["img_003", "0.3", "1"] and len(rows) == count + 1
    assert sorted(path.name for path in out.iterdir()) == ["boxes.json", "heatmaps", "maps", "masks", "overlays",
                                                           "scores.csv"]  # no records files left


def test_an_empty_run_writes_empty_summaries(tmp_path):
    with PredictionWriter(tmp_path / "out", (0.0, 2.0)):
        pass
    assert json.loads((tmp_path / "out" / "boxes.json").read_text())["images"] == []
    assert (tmp_path / "out" / "scores.csv").read_text().splitlines() == ["name,score,boxes"]


def test_a_failed_background_write_stops_the_run_and_leaves_nothing(tmp_path, monkeypatch):
    write = writer_module.write_picture

    def failing(path, picture):
        if path.stem == "img_005":
            raise OSError(f"{path}: could not write image")
        write(path, picture)

    monkeypatch.setattr(writer_module, "write_picture", failing)
    with pytest.raises(OSError, match=r"img_005\.png: could not write image"):
        with PredictionWriter(tmp_path / "out", (0.0, 2.0)) as writer:
            for index in range(8):
                writer.add(_item(f"img_{index:03d}.png"))
    assert list(tmp_path.iterdir()) == []


def test_order_must_increase(tmp_path):
    with pytest.raises(ValueError, match=r"order must increase .* got 1 after 2"):
        with PredictionWriter(tmp_path / "out", (0.0, 2.0)) as writer:
            writer.add(_item("a"), order=2)
            writer.add(_item("b"), order=1)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_folder_and_a_failed_rename_keeps_the_old_one(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("before")
    with PredictionWriter(out, (0.0, 2.0), overwrite=True) as writer:
        writer.add(_item("new.png"))
    assert not (out / "old.txt").exists() and (out / "maps" / "new.npy").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]

    replace = files.os.replace

    def failing(source, target):
        if str(source).startswith(str(tmp_path / ".out.")) and ".replaced." not in str(source) and target == out:
            raise OSError("simulated: rename failed")
        replace(source, target)

    monkeypatch.setattr(files.os, "replace", failing)
    with pytest.raises(OSError, match="simulated"):
        with PredictionWriter(out, (0.0, 2.0), overwrite=True) as writer:
            writer.add(_item("newer.png"))
    assert (out / "maps" / "new.npy").exists() and not (out / "maps" / "newer.npy").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
