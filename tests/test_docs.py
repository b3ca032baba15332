"""The documentation matches the code: the API reference is generated from the current
docstrings, and the example of docs/howto/add-a-model.md works as the page says."""
import json
import re
import sys
import types
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

import dfr
from dfr.api import registry
from dfr.data.synthetic import defect_dataset
from tests.conftest import pixel_auc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import make_api  # noqa: E402


def test_api_reference_is_generated_from_the_current_docstrings():
    assert (ROOT / "docs" / "api.md").read_text() == make_api.render(), \
        "docs/api.md is out of date: run python docs/make_api.py"


def test_api_reference_lists_every_module_with_one_line():
    text = (ROOT / "docs" / "api.md").read_text()
    for name in make_api.module_names():
        assert re.search(rf"^ *- `{re.escape(name)}` — \S", text, re.MULTILINE), name


@pytest.fixture
def mean_image(monkeypatch):
    """The example model of docs/howto/add-a-model.md, defined from the page and registered."""
    page = (ROOT / "docs" / "howto" / "add-a-model.md").read_text()
    source = re.search(r"```python\n(.*?)```", page, re.DOTALL).group(1)
    module = types.ModuleType("mean_image_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, "docs/howto/add-a-model.md", "exec"), module.__dict__)
    monkeypatch.setattr(registry, "_registered", {})
    dfr.register_model("mean-image", module.MeanImage)
    return module.MeanImage


def test_the_example_model_of_the_how_to_fits_predicts_saves_and_runs_from_the_command_line(mean_image, tmp_path):
    data = defect_dataset("brick", n_train=10, n_test=6, size=48, seed=0)
    assert "mean-image" in dfr.list_models() and dfr.model_info("mean-image").datasets == ("mvtec", "ucsd")
    model = dfr.create_model("mean-image", size=32, device="cpu").fit(data.train)
    prediction = model.predict(data.test)
    assert prediction.anomaly_maps.shape == (6, 48, 48) and pixel_auc(prediction.anomaly_maps, data.masks) > 0.6
    model.save(tmp_path / "mean.dfr")
    loaded = dfr.load(tmp_path / "mean.dfr")
    assert type(loaded) is mean_image and np.array_equal(loaded.anomaly_map(data.test), prediction.anomaly_maps)
    with pytest.raises(ValueError, match="MeanImage: size must be a positive integer, got 'big'"):
        dfr.create_model("mean-image", size="big").fit(data.train)
    folder = tmp_path / "train"
    folder.mkdir()
    for index, image in enumerate(data.train):
        cv2.imwrite(str(folder / f"{index}.png"), (image * 255).astype(np.uint8))
    from dfr.cli import main

    assert main(["fit", "--model", "mean-image", "--size", "24", "--train", str(folder), "--device", "cpu",
                 "--out", str(tmp_path / "cli.dfr")]) == 0
    assert dfr.load(tmp_path / "cli.dfr").size == 24
    pytest.importorskip("onnxruntime", reason="ONNX export needs the export extra")
    exported = dfr.load(model.export_onnx(tmp_path / "mean.onnx"))
    assert np.abs(exported.anomaly_map(data.test) - prediction.anomaly_maps).max() < 1e-5


def test_registering_a_name_twice_for_another_class_is_refused(mean_image):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="taken by baselines.cae.CAE"):
            dfr.register_model("cae", mean_image)
        with pytest.raises(TypeError, match="not a subclass of dfr.AnomalyModel"):
            dfr.register_model("thing", dict)


def test_make_demo_copies_the_demo_tables_into_the_benchmarks_page(tmp_path, monkeypatch):
    import update_demo_tables

    runs = [{"fit_seconds": 50.0, "predict_seconds": 10.0}, {"fit_seconds": None, "predict_seconds": 60.0}]
    (tmp_path / "results.json").write_text(json.dumps({
        "runs": runs, "machine": "x86_64", "machine_description": "2 CPU cores (x86_64), no GPU",
        "date": "2026-12-06", "dfr_version": "0.1.0", "torch_version": "2.13.0+cpu", "seed": 0}))
    (tmp_path / "results.md").write_text("### mvtec: brick\n\n| model | pixel AUROC |\n|---|---|\n| DFR | 0.9 |\n")
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nbefore\n{update_demo_tables.START}\nold tables\n{update_demo_tables.END}\nafter\n")
    monkeypatch.setattr(update_demo_tables, "PAGE", page)
    update_demo_tables.main(str(tmp_path))
    text = page.read_text()
    assert "old tables" not in text and text.startswith("# Benchmarks\n\nbefore\n") and text.endswith("after\n")
    assert "`make demo` on 2 CPU cores (x86_64), no GPU, 2026-12-06: 2 runs, 2 min" in text
    assert "#### mvtec: brick" in text and "| DFR | 0.9 |" in text
