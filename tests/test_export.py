"""ONNX export: the metadata, what an exported model refuses, and the command line. That every
model predicts the same through onnxruntime as through torch: tests/test_common.py."""
import json
import warnings

import numpy as np
import pytest

import dfr
from baselines import CAE
from dfr import DFR
from dfr.cli import main
from dfr.data.synthetic.defects import defect_dataset

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore:VGG19 with random weights")

LAYERS = ("relu1_2", "relu2_2", "relu3_4")
#: Largest map difference allowed, as a fraction of the model's normal q99 pixel.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def images():
    return defect_dataset("brick", n_train=12, n_test=6, size=64, seed=0)


def _fit(kind, images):
    """A small DFR or CAE fitted on ``images`` (every model's parity: tests/test_common.py)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "dfr":
            return DFR("cpu", weights=None, layers=LAYERS, image_size=64, epochs=2, device="cpu").fit(images.train)
        return CAE("cpu", image_size=32, channels=8, bottleneck=16, epochs=2, device="cpu").fit(images.train)


def test_metadata_describes_the_input_and_keeps_the_settings(images, tmp_path):
    import onnx

    model = _fit("dfr", images)
    path = model.export_onnx(tmp_path / "dfr.onnx")
    record = json.loads({entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}["dfr"])
    assert record["model"] == "dfr" and record["scoring"]["threshold"] == model.threshold_
    assert record["input"]["shape"] == [None, 3, 64, 64] and record["input"]["layout"] == "NCHW"
    assert record["input"]["normalisation"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert record["params"]["scoring"]["min_box_area"] == model.scoring.min_box_area
    assert record["output"]["layout"] == "NHW"


def test_an_onnx_model_predicts_only_and_bad_files_are_named(images, tmp_path):
    model = _fit("cae", images)
    path = model.export_onnx(tmp_path / "cae.onnx")
    exported = dfr.load(path)
    with pytest.raises(RuntimeError, match="loaded from an ONNX file and can only predict; fit needs the .dfr"):
        exported.fit(images.train)
    with pytest.raises(RuntimeError, match="save needs the .dfr model file"):
        exported.save(tmp_path / "again.dfr")
    with pytest.raises(FileExistsError, match="cae.onnx: file exists"):
        model.export_onnx(path)
    with pytest.raises(ValueError, match="must end in .onnx"):
        model.export_onnx(tmp_path / "cae.bin")

    import onnx

    proto = onnx.load(str(path))
    entry = next(entry for entry in proto.metadata_props if entry.key == "dfr")
    entry.value = entry.value.replace('"format_version": 1', '"format_version": 99')
    onnx.save(proto, str(tmp_path / "newer.onnx"))
    with pytest.raises(ValueError, match="newer.onnx: dfr ONNX format version 99 .* reads version 1"):
        dfr.load(tmp_path / "newer.onnx")
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="plain.onnx: an ONNX file without dfr metadata"):
        dfr.load(tmp_path / "plain.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(ValueError, match="junk.onnx: not a readable ONNX file"):
        dfr.load(tmp_path / "junk.onnx")


def test_cli_export_then_predict_writes_the_files_of_the_model_file(images, tmp_path, capsys):
    import cv2

    model = _fit("cae", images)
    model.save(tmp_path / "cae.dfr")
    folder = tmp_path / "test"
    folder.mkdir()
    for index, image in enumerate(images.test):
        cv2.imwrite(str(folder / f"img{index}.png"), (np.asarray(image) * 255).astype(np.uint8))
    assert main(["export", str(tmp_path / "cae.dfr"), str(tmp_path / "cae.onnx")]) == 0
    assert "exported CAE" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "cae.dfr"), str(tmp_path / "cae.onnx")]) == 2
    assert "cae.onnx: file exists" in capsys.readouterr().err
    for name in ("cae.dfr", "cae.onnx"):
        assert main(["predict", str(tmp_path / name), str(folder), "--out", str(tmp_path / f"out-{name}")]) == 0
    torch_out, onnx_out = tmp_path / "out-cae.dfr", tmp_path / "out-cae.onnx"
    assert sorted(p.relative_to(torch_out) for p in torch_out.rglob("*")) == \
        sorted(p.relative_to(onnx_out) for p in onnx_out.rglob("*"))
    for mask in (torch_out / "masks").iterdir():
        assert np.array_equal(cv2.imread(str(mask)), cv2.imread(str(onnx_out / "masks" / mask.name)))
    tolerance = TOLERANCE * model.score_stats_["pixel_q99"]
    for anomaly_map in (torch_out / "maps").iterdir():
        assert np.abs(np.load(anomaly_map) - np.load(onnx_out / "maps" / anomaly_map.name)).max() <= tolerance
    summaries = [json.loads((out / "boxes.json").read_text()) for out in (torch_out, onnx_out)]
    assert [[box[:4] for box in image["boxes"]] for image in summaries[0]["images"]] == \
        [[box[:4] for box in image["boxes"]] for image in summaries[1]["images"]]
