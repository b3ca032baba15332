import json

import cv2
import numpy as np
import pytest

from benchmarks.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:VGG19 with random weights")


@pytest.fixture
def folders(tmp_path, brick):
    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    for index, image in enumerate(brick.train[:8]):
        cv2.imwrite(str(train / f"{index}.png"), (image[:64, :64] * 255).astype(np.uint8))
    for index, image in enumerate(brick.test[:3]):
        cv2.imwrite(str(test / f"t{index}.png"), (image[:64, :64] * 255).astype(np.uint8))
    return train, test


def test_fit_then_predict_end_to_end(folders, tmp_path, capsys):
    train, test = folders
    model = tmp_path / "m.dfr"
    assert main(["fit", "--train", str(train), "--weights", "random", "--image-size", "64",
                 "--epochs", "2", "--out", str(model)]) == 0
    assert "threshold" in capsys.readouterr().out and model.is_file()
    out = tmp_path / "out"
    assert main(["predict", str(model), str(test), "--out", str(out)]) == 0
    for sub in ("maps", "heatmaps", "masks", "overlays"):
        assert sorted(p.stem for p in (out / sub).iterdir()) == ["t0", "t1", "t2"]
    assert np.load(out / "maps" / "t0.npy").shape == (64, 64)
    summary = json.loads((out / "boxes.json").read_text())
    assert [r["name"] for r in summary["images"]] == ["t0", "t1", "t2"]
    assert (out / "scores.csv").read_text().splitlines()[0] == "name,score,boxes"
    # a non-empty output folder is refused, then replaced when asked
    assert main(["predict", str(model), str(test), "--out", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert main(["predict", str(model), str(test), "--out", str(out), "--overwrite"]) == 0
    # the model file is not replaced without --overwrite
    assert main(["fit", "--train", str(train), "--weights", "random", "--out", str(model)]) == 1
    assert "file exists" in capsys.readouterr().err


def test_bad_input_gives_one_line_reason(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["fit", "--train", str(tmp_path / "empty"), "--out", str(tmp_path / "m.dfr")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no images found" in error and "empty" in error
    assert main(["predict", str(tmp_path / "none.dfr"), str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "no such model file" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fit", "predict", "bench", "demo"])
def test_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and f"dfr {command}" in capsys.readouterr().out
