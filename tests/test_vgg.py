import pytest
import torch
import torch.nn.functional as F

from dfr.models.backbones import vgg as vgg_module
from dfr.models.backbones.vgg import VGG19, vgg19

# torchvision's vgg19 ("E" configuration), written out: features index → (out, in) channels.
TORCHVISION_CONVS = {
    0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128), 12: (256, 256), 14: (256, 256),
    16: (256, 256), 19: (512, 256), 21: (512, 512), 23: (512, 512), 25: (512, 512), 28: (512, 512),
    30: (512, 512), 32: (512, 512), 34: (512, 512),
}
TORCHVISION_LINEARS = {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}


def torchvision_layout():
    layout = {}
    for index, (out, inp) in TORCHVISION_CONVS.items():
        layout[f"features.{index}.weight"] = (out, inp, 3, 3)
        layout[f"features.{index}.bias"] = (out,)
    for index, (out, inp) in TORCHVISION_LINEARS.items():
        layout[f"classifier.{index}.weight"] = (out, inp)
        layout[f"classifier.{index}.bias"] = (out,)
    return layout


@pytest.mark.parametrize("reflect", [False, True])
def test_parameter_names_and_shapes_equal_torchvision(reflect):
    model = VGG19(reflect_padding=reflect, with_classifier=True)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == torchvision_layout()


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(1)
    state = {k: torch.randn(v) * 0.01 for k, v in torchvision_layout().items()}
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    return path, state


def test_local_checkpoint_loads_strictly(checkpoint):
    path, state = checkpoint
    model = vgg19(path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key])
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_incomplete_checkpoint_is_refused(checkpoint, tmp_path):
    _, state = checkpoint
    del state["classifier.6.bias"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(RuntimeError, match="classifier.6.bias"):
        vgg19(tmp_path / "partial.pth")


def test_imagenet_offline_fails_fast_with_instructions(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(vgg_module.torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match=r"Offline, copy vgg19-dcbb9e9d.pth to .*checkpoints"):
        vgg19("imagenet")


def test_random_weights_warn_and_are_seeded():
    with pytest.warns(UserWarning, match="only serve for testing"):
        first, second, other = vgg19(None, seed=3), vgg19(None, seed=3), vgg19(None, seed=4)
    assert torch.equal(first.features[0].weight, second.features[0].weight)
    assert not torch.equal(first.features[0].weight, other.features[0].weight)


def test_named_outputs_shapes_and_reflection_padding():
    model = VGG19(reflect_padding=True).eval()
    x = torch.rand(1, 3, 32, 32)
    out = model.forward_features(x, ["relu1_1", "relu3_4"])
    assert list(out) == ["relu1_1", "relu3_4"]
    assert out["relu1_1"].shape == (1, 64, 32, 32) and out["relu3_4"].shape == (1, 256, 8, 8)
    conv = model.features[0]
    expected = F.relu(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), conv.weight, conv.bias))
    assert torch.allclose(out["relu1_1"], expected, atol=1e-6)
    with pytest.raises(ValueError, match="unknown VGG19 layers"):
        model.forward_features(x, ["relu6_1"])


def test_weights_state_keeps_only_needed_convs_and_loads_back():
    source, target = VGG19(), VGG19()
    state = source.weights_state(["relu1_1", "relu2_2"])
    assert sorted(state) == sorted(f"features.{i}.{p}" for i in (0, 2, 5, 7) for p in ("weight", "bias"))
    target.load_weights_state(state, ["relu2_2"])
    assert torch.equal(target.features[7].weight, source.features[7].weight)
    with pytest.raises(ValueError, match="do not match"):
        target.load_weights_state(state, ["relu3_1"])
