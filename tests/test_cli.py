import json

import cv2
import numpy as np
import pytest

from dfr.cli import main

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
    assert main(["predict", str(model), str(test), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["predict", str(model), str(test), "--out", str(out), "--overwrite"]) == 0
    # the model file is not replaced without --overwrite
    assert main(["fit", "--train", str(train), "--weights", "random", "--out", str(model)]) == 2
    assert "file exists" in capsys.readouterr().err


def test_bad_input_gives_one_line_reason(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["fit", "--train", str(tmp_path / "empty"), "--out", str(tmp_path / "m.dfr")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no images found" in error and "empty" in error
    assert main(["predict", str(tmp_path / "none.dfr"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no such model file" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["fit", "predict", "bench", "demo"])
def test_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and f"dfr {command}" in capsys.readouterr().out


def test_video_model_fits_on_clip_folders_and_predicts_one_output_per_frame(tmp_path, capsys):
    from dfr.data.synthetic import write_ucsd_like

    data = write_ucsd_like(tmp_path / "ucsd", n_train_clips=2, n_test_clips=2, frames=12, size=(48, 64), seed=0)
    root = tmp_path / "ucsd" / "UCSDped2"
    model = tmp_path / "stae.dfr"
    assert main(["fit", "--model", "stae", "--preset", "cpu", "--image-size", "83", "--epochs", "1",
                 "--train", str(root / "Train"), "--out", str(model)]) == 0
    assert "STAE on 2 clips" in capsys.readouterr().out
    out = tmp_path / "out"
    assert main(["predict", str(model), str(root / "Test"), "--out", str(out)]) == 0  # the _gt folders are skipped
    assert "2 clips (24 frames)" in capsys.readouterr().out
    names = [record["name"] for record in json.loads((out / "boxes.json").read_text())["images"]]
    assert names == [f"Test{c:03d}_{f:03d}" for c in (1, 2) for f in range(1, 13)]
    assert len(data.test) == 2 and sorted(p.name for p in (out / "videos").iterdir()) == ["Test001.mp4", "Test002.mp4"]
    video = cv2.VideoCapture(str(out / "videos" / "Test001.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 12 and int(video.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128


def test_options_that_do_not_apply_are_refused(folders, tmp_path, capsys):
    train, _ = folders
    mask = tmp_path / "region.png"
    cv2.imwrite(str(mask), np.full((64, 64), 255, np.uint8))
    assert main(["fit", "--model", "stae", "--train", str(train), "--region-masks", str(mask),
                 "--out", str(tmp_path / "m.dfr")]) == 2
    assert "apply only to image models, not to stae" in capsys.readouterr().err
    assert main(["fit", "--model", "poolae", "--train", str(train), "--image-size", "64",
                 "--out", str(tmp_path / "m.dfr")]) == 2
    assert "--image-size does not apply to poolae" in capsys.readouterr().err
    assert main(["fit", "--model", "stae", "--weights", "random", "--train", str(train), "--out", str(tmp_path / "m.dfr")]) == 2
    assert "--weights does not apply to stae" in capsys.readouterr().err
    assert main(["fit", "--model", "cae", "--preset", "gpu", "--train", str(train), "--out", str(tmp_path / "m.dfr")]) == 2
    assert "unknown preset 'gpu'" in capsys.readouterr().err


def test_pool_model_with_one_region_mask_for_every_image(folders, tmp_path, capsys):
    train, test = folders
    mask = np.zeros((64, 64), np.uint8)
    mask[8:56, 8:56] = 255
    cv2.imwrite(str(tmp_path / "region.png"), mask)
    model = tmp_path / "pool.dfr"
    assert main(["fit", "--model", "poolae", "--preset", "cpu", "--epochs", "1", "--train", str(train),
                 "--region-masks", str(tmp_path / "region.png"), "--out", str(model)]) == 0
    out = tmp_path / "out"
    assert main(["predict", str(model), str(test), "--region-masks", str(tmp_path / "region.png"), "--out", str(out)]) == 0
    anomaly_map = np.load(out / "maps" / "t0.npy")
    assert np.all(anomaly_map[mask == 0] == 0) and anomaly_map[mask > 0].max() > 0


def test_demo_refuses_unknown_models(tmp_path, capsys):
    assert main(["demo", "--models", "dfr,stea", "--out", str(tmp_path / "d")]) == 2
    assert "unknown or unavailable model 'stea'" in capsys.readouterr().err


def test_fit_a_feature_head_with_scoring_flags(folders, tmp_path, capsys):
    import dfr
    from baselines import PatchMemoryBank

    train, test = folders
    model_path = tmp_path / "bank.dfr"
    assert main(["fit", "--model", "memory-bank", "--train", str(train), "--weights", "random", "--image-size", "32",
                 "--smoothing-sigma", "0", "--image-score", "max", "--target-fpr", "0.01", "--normalise-positions", "true",
                 "--out", str(model_path)]) == 0
    model = dfr.load(model_path)
    assert isinstance(model, PatchMemoryBank) and model.image_size == 32
    assert (model.scoring.smoothing_sigma, model.scoring.image_score, model.scoring.target_fpr) == (0.0, "max", 0.01)
    assert model.scoring.normalise_positions and model.position_scale_.min() > 0
    out = tmp_path / "out"
    assert main(["predict", str(model_path), str(test), "--out", str(out)]) == 0
    anomaly_map = np.load(out / "maps" / "t0.npy")
    assert float((out / "scores.csv").read_text().splitlines()[1].split(",")[1]) == pytest.approx(anomaly_map.max(), rel=1e-5)
    # box settings can change at predict time; those that fixed the threshold cannot
    out = tmp_path / "merged"
    assert main(["predict", str(model_path), str(test), "--out", str(out), "--min-box-area", "0",
                 "--merge-gap", "none", "--nms-iou", "1"]) == 0
    assert main(["predict", str(model_path), str(test), "--out", str(tmp_path / "x"), "--nms-iou", "many"]) == 2
    assert "--nms-iou: 'many' is not float" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: status 2
        main(["predict", str(model_path), str(test), "--out", str(tmp_path / "x"), "--target-fpr", "0.1"])
    assert "unrecognized arguments: --target-fpr" in capsys.readouterr().err
    # options that do not apply to a head are refused
    assert main(["fit", "--model", "pca-residual", "--train", str(train), "--preset", "cpu",
                 "--out", str(tmp_path / "p.dfr")]) == 2
    assert "--preset does not apply to pca-residual" in capsys.readouterr().err


def test_parse_value_follows_the_type_hint():
    from typing import Optional, Sequence

    from dfr.cli import parse_value

    assert parse_value("3", int | None) == 3 and parse_value("none", int | None) is None
    assert parse_value("1e-3", float | None) == 1e-3 and parse_value("2", float) == 2.0
    assert parse_value("false", bool | None) is False and parse_value("True", bool) is True
    assert parse_value("auto", int | str | None) == "auto" and parse_value("512", int | str | None) == 512
    assert parse_value("relu1_1,relu2_1", tuple[str, ...] | list[str] | None) == ["relu1_1", "relu2_1"]
    assert parse_value("relu1_1", tuple[str, ...] | list[str] | None) == ["relu1_1"]
    assert parse_value("1, 2", Optional[Sequence[int]]) == [1, 2]
    with pytest.raises(ValueError, match="'three' is not int or none"):
        parse_value("three", int | None)
    with pytest.raises(ValueError, match="'yes' is not true or false"):
        parse_value("yes", bool)


def test_fit_flags_mirror_the_constructors(folders, tmp_path, capsys):
    import dfr

    train, _ = folders
    common = ["--train", str(train), "--weights", "random", "--backbone", "vgg19", "--layers", "relu1_1,relu2_1",
              "--image-size", "32"]
    bank_path = tmp_path / "bank.dfr"
    assert main(["fit", "--model", "memory-bank", *common, "--coreset-fraction", "0.5", "--projection-dim", "none",
                 "--positions-per-image", "40", "--official-border", "true", "--out", str(bank_path)]) == 0
    bank = dfr.load(bank_path)
    assert (bank.layers, bank.image_size, bank.coreset_fraction) == (("relu1_1", "relu2_1"), 32, 0.5)
    assert bank.projection_dim is None and bank.positions_per_image == 40 and bank.official_border is True
    dfr_path = tmp_path / "dfr.dfr"
    assert main(["fit", *common, "--latent-dim", "3", "--learning-rate", "1e-3", "--normalise", "false",
                 "--epochs", "2", "--hidden", "16", "--out", str(dfr_path)]) == 0
    model = dfr.load(dfr_path)
    assert (model.latent_dim, model.learning_rate, model.normalise, model.epochs) == (3, 1e-3, False, 2)
    assert model.latent_dim_ == 3 and model.autoencoder_.encoder[0].out_channels == 16
    assert model.preset == "cpu" and model.explained_variance == 0.9  # omitted flags: the constructor's defaults
    capsys.readouterr()

    # bad values: the constructor's own message, or the parser's when the type does not fit
    out = ["--out", str(tmp_path / "bad.dfr")]
    assert main(["fit", "--model", "memory-bank", *common, "--coreset-fraction", "2", *out]) == 2
    assert "coreset_fraction must be a number in (0, 1], got 2.0" in capsys.readouterr().err
    assert main(["fit", *common, "--latent-dim", "three", *out]) == 2
    assert "--latent-dim: 'three' is not int or none" in capsys.readouterr().err
    # a flag of another model is refused
    assert main(["fit", "--model", "pca-residual", *common, "--coreset-fraction", "0.5", *out]) == 2
    assert "--coreset-fraction does not apply to pca-residual" in capsys.readouterr().err


def test_fit_help_names_the_models_and_defaults_of_each_flag(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--coreset-fraction CORESET_FRACTION share of the sampled vectors kept in the bank" in text
    assert "(memory-bank; default 0.05)" in text and "(dfr, pca-residual; default 0.9)" in text
    assert "(cae, convlstm, poolae, stae: default source; dfr: default cpu)" in text
