import pickle

import numpy as np
import pytest
import torch

import dfr
from dfr import serialization


def test_incompatible_format_version_is_refused(fitted_dfr, tmp_path, monkeypatch):
    path = tmp_path / "future.dfr"
    monkeypatch.setattr(serialization, "FORMAT_VERSION", 99)
    fitted_dfr.save(path)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=rf"format version 99 .*reads format version {serialization.FORMAT_VERSION}"):
        dfr.load(path)
    # format 1 kept target_fpr, validation_fraction and min_box_area as separate parameters
    torch.save({"format": "dfr-model", "format_version": 1, "params": {"target_fpr": 0.005}}, tmp_path / "old.dfr")
    with pytest.raises(ValueError, match="format version 1 .*refit the model"):
        dfr.load(tmp_path / "old.dfr")


class _Payload:
    def __reduce__(self):
        return (print, ("code from the file ran",))


def test_loading_never_executes_code_from_the_file(tmp_path, capsys):
    path = tmp_path / "evil.dfr"
    with open(path, "wb") as stream:
        pickle.dump({"format": "dfr-model", "format_version": 1, "x": _Payload()}, stream, protocol=2)
    with pytest.raises(ValueError, match="refused: the file holds Python objects"):
        dfr.load(path)
    assert "code from the file ran" not in capsys.readouterr().out


def test_foreign_files_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a dfr model file"):
        dfr.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no such model file"):
        dfr.load(tmp_path / "missing.dfr")
    serialization.write_model_file(tmp_path / "cls.dfr", {"model_class": "os.system"})
    with pytest.raises(ValueError, match="'os.system' is not a registered dfr model"):
        dfr.load(tmp_path / "cls.dfr")
    serialization.write_model_file(tmp_path / "name.dfr", {"model": "no-such-model"})
    with pytest.raises(ValueError, match="'no-such-model' is not registered here"):
        dfr.load(tmp_path / "name.dfr")


def test_files_written_before_the_registry_and_the_new_layout_load_unchanged(fitted_dfr, tmp_path):
    """Earlier files name no registered model, only the class at its former place (dfr.dfr_model.DFR)."""
    fitted_dfr.save(tmp_path / "new.dfr")
    record = torch.load(tmp_path / "new.dfr", weights_only=True)
    payload = {key: value for key, value in record.items() if key not in serialization.RESERVED_KEYS + ("model",)}
    serialization.write_model_file(tmp_path / "old.dfr", {**payload, "model_class": "dfr.dfr_model.DFR"})
    loaded = dfr.load(tmp_path / "old.dfr", device="cpu")
    assert type(loaded) is dfr.DFR and loaded.get_params() == fitted_dfr.get_params() | {"device": "cpu"}
    assert np.array_equal(loaded.anomaly_map(np.full((40, 40), 0.5)), fitted_dfr.anomaly_map(np.full((40, 40), 0.5)))


def test_file_holds_config_threshold_statistics_and_versions(fitted_dfr, tmp_path):
    path = tmp_path / "m.dfr"
    fitted_dfr.save(path)
    record = torch.load(path, weights_only=True)
    assert record["library_version"] == dfr.__version__ and record["model"] == "dfr"
    assert record["model_class"] == "dfr.models.dfr.DFR"
    assert record["params"]["image_size"] == 128 and "device" not in record["params"]
    assert record["scoring"]["threshold"] == fitted_dfr.threshold_
    assert set(record["scoring"]["stats"]) >= {"pixel_median", "image_score_mean"}
    assert all(isinstance(v, torch.Tensor) for v in record["state"]["autoencoder"].values())


def test_failed_save_leaves_the_old_file_untouched(fitted_dfr, tmp_path, monkeypatch):
    path = tmp_path / "m.dfr"
    path.write_bytes(b"previous model")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(serialization.torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        fitted_dfr.save(path)
    assert path.read_bytes() == b"previous model" and [p.name for p in tmp_path.iterdir()] == ["m.dfr"]


def test_model_saved_from_another_device_loads_on_cpu(fitted_dfr, tmp_path, monkeypatch):
    # every tensor goes through map_location="cpu"; a GPU-fitted file therefore loads here
    calls = {}
    original = torch.load

    def spy(*args, **kwargs):
        calls.update(kwargs)
        return original(*args, **kwargs)

    path = tmp_path / "m.dfr"
    fitted_dfr.save(path)
    monkeypatch.setattr(serialization.torch, "load", spy)
    model = dfr.load(path, device="cpu")
    assert calls["map_location"] == "cpu" and calls["weights_only"] is True
    assert model.device_ == torch.device("cpu") and np.isfinite(model.threshold_)
