"""The checks every registered model passes (in the spirit of scikit-learn's estimator checks).

Each model of ``dfr.list_models()`` is built from its small settings in ``tests.conftest.TINY``,
fitted once per test run on generated data with planted anomalies, and checked for: the fit
contract, results of the right shapes that find the planted anomalies, identical maps after
save and load, the same maps through onnxruntime, and clear errors for bad input and bad
parameters. Model-specific behaviour is tested in the model's own test file.
"""
import inspect
import warnings

import numpy as np
import pytest

import dfr
from dfr.api.params import Rule
from dfr.data.synthetic import defect_dataset
from tests.conftest import TINY, pixel_auc

MODELS = dfr.list_models()
#: Largest map difference allowed between torch and onnxruntime, as a fraction of the normal q99 pixel.
ONNX_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def images():
    return defect_dataset("brick", n_train=12, n_test=6, size=64, seed=0)


@pytest.fixture(scope="module")
def clips():
    """Three normal clips of a drifting gradient, and a test clip with a bright flash on frame 7."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 30 * 30, dtype=np.float32).reshape(30, 30)
    normal = [np.stack([0.9 * np.roll(ramp, step, axis=1) + 0.05 * rng.random((30, 30), np.float32)
                        for step in range(14)]) for _ in range(3)]
    test = normal[0].copy()
    test[7, 8:22, 8:22] = 1.0
    return {"train": normal, "test": test, "flash": 7}


@pytest.fixture(scope="module")
def fitted(images, clips):
    """Model name → the model fitted on its kind of data (fitted on first use, once per module)."""
    cache = {}

    def get(name):
        if name not in cache:
            train = clips["train"] if dfr.model_info(name).input_kind == "clips" else images.train
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # random backbone weights
                cache[name] = _tiny(name).fit(train)
        return cache[name]

    return get


def _tiny(name, **changes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dfr.create_model(name, **{**TINY[name], "seed": 0, "device": "cpu", **changes})


def _test_data(name, images, clips):
    return clips["test"] if dfr.model_info(name).input_kind == "clips" else images.test


def test_every_registered_model_has_small_test_settings():
    assert {"dfr", "pca-residual", "memory-bank", "cae", "stae", "convlstm", "poolae"} <= set(MODELS)
    assert sorted(TINY) == MODELS, "add the new model's small settings to tests/conftest.py TINY"


@pytest.mark.parametrize("name", MODELS)
def test_registry_facts_and_parameters_round_trip(name):
    info = dfr.model_info(name)
    model = _tiny(name)
    assert isinstance(model, dfr.AnomalyModel) and type(model) is info.model_class
    assert info.input_kind in ("images", "clips") and set(info.datasets) <= {"mvtec", "pool", "ucsd"}
    assert info.takes_backbone == ("backbone" in model.get_params())
    assert set(info.presets) == set(type(model).PRESETS)
    again = dfr.create_model(name, **model.get_params())
    assert repr(again) == repr(model)  # every parameter is kept under its own name
    assert all(isinstance(rule, Rule) for klass in type(model).__mro__ for rule in vars(klass).get("PARAMETERS", {}).values())


@pytest.mark.parametrize("name", MODELS)
def test_fit_returns_the_model_with_its_learned_state_and_unchanged_parameters(name, fitted, images, clips):
    model = _tiny(name)
    before = model.get_params()
    assert not hasattr(model, "threshold_")
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(_test_data(name, images, clips))
    same = fitted(name)
    assert type(same) is type(model) and same.get_params() == before
    assert np.isfinite(same.threshold_) and same.threshold_ > same.score_stats_["pixel_median"]
    assert {"pixel_median", "pixel_q99", "image_score_mean"} <= set(same.score_stats_)


@pytest.mark.parametrize("name", MODELS)
def test_predictions_have_the_documented_shapes_and_find_the_planted_anomalies(name, fitted, images, clips):
    model = fitted(name)
    data = _test_data(name, images, clips)
    prediction = model.predict(data)
    count, height, width = (len(data), *data.shape[1:3]) if model.input_kind == "clips" else (len(data), 64, 64)
    assert prediction.anomaly_maps.shape == (count, height, width) and prediction.anomaly_maps.dtype == np.float32
    assert prediction.masks.shape == prediction.anomaly_maps.shape and prediction.masks.dtype == bool
    assert prediction.scores.shape == (count,) and len(prediction.boxes) == count
    assert all(boxes.ndim == 2 and boxes.shape[1] == 5 for boxes in prediction.boxes)
    assert prediction.threshold == model.threshold_
    if model.input_kind == "clips":
        assert int(np.argmax(prediction.scores)) == clips["flash"]
    else:
        assert pixel_auc(prediction.anomaly_maps, images.masks) > 0.7
    items = list(model.predict_iter(data, batch_size=2))
    assert len(items) == count
    assert np.array_equal(np.stack([item.anomaly_map for item in items]), prediction.anomaly_maps)


@pytest.mark.parametrize("name", MODELS)
def test_save_and_load_give_the_same_model_and_maps(name, fitted, images, clips, tmp_path):
    model = fitted(name)
    model.save(tmp_path / "model.dfr")
    loaded = dfr.load(tmp_path / "model.dfr", device="cpu")
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    assert loaded.threshold_ == model.threshold_ and loaded.score_stats_ == model.score_stats_
    data = _test_data(name, images, clips)
    assert np.array_equal(loaded.anomaly_map(data), model.anomaly_map(data))


@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_predicts_what_torch_predicts(name, fitted, images, clips, tmp_path):
    pytest.importorskip("onnxruntime")
    model = fitted(name)
    exported = dfr.load(model.export_onnx(tmp_path / "model.onnx"))
    assert type(exported) is type(model) and exported.onnx_session_ is not None
    assert exported.threshold_ == model.threshold_ and exported.score_stats_ == model.score_stats_
    data = _test_data(name, images, clips)
    expected, got = model.predict(data), exported.predict(data)
    tolerance = ONNX_TOLERANCE * model.score_stats_["pixel_q99"]
    assert max(np.abs(a - b).max() for a, b in zip(expected.anomaly_maps, got.anomaly_maps)) <= tolerance
    assert all(np.array_equal(a, b) for a, b in zip(expected.masks, got.masks))
    for a, b in zip(expected.boxes, got.boxes):
        np.testing.assert_array_equal(a[:, :4], b[:, :4])
    np.testing.assert_allclose(expected.scores, got.scores, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_bad_input_is_refused_with_a_message_that_names_it(name, fitted):
    model = fitted(name)
    with pytest.raises((ValueError, TypeError), match="shape|expected|cannot read"):
        model.predict(np.zeros((2, 3, 4, 5, 6), np.float32))
    with pytest.raises(TypeError, match="cannot read"):
        model.predict(12)
    with pytest.raises(FileNotFoundError, match="no-such-folder"):
        model.predict("no-such-folder/image.png")


@pytest.mark.parametrize("name", MODELS)
def test_bad_parameters_are_named_before_anything_is_built(name, images, clips):
    rules = {}
    for klass in reversed(dfr.model_info(name).model_class.__mro__):
        rules.update(vars(klass).get("PARAMETERS", {}))
    assert rules, f"{name} declares no parameter rules"
    data = _test_data(name, images, clips)
    for parameter in rules:
        if parameter in inspect.signature(dfr.create_model).parameters or parameter not in _tiny(name).get_params():
            continue
        with pytest.raises(ValueError, match=f"{parameter} must be"):
            _tiny(name, **{parameter: "bad value"}).fit(data)
    with pytest.raises(TypeError):
        _tiny(name, no_such_parameter=1)
