"""``official_border``: the official DFR code's reflection border on the layers a conv follows."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dfr
from baselines import PatchMemoryBank, PCAResidual
from dfr import DFR
from dfr.api.persistence import RESERVED_KEYS, read_model_file, write_model_file
from dfr.models.backbones import build_backbone
from dfr.models.backbones.vgg import RELU_LAYERS, vgg19
from dfr.models.features import RegionalFeatureExtractor

pytestmark = pytest.mark.filterwarnings("ignore:VGG19 with random weights")

SIZE = 64
# The layers the official code returns with their border: every ReLU output but the last of each block.
BORDERED = {"relu1_1", "relu2_1", "relu3_1", "relu3_2", "relu3_3", "relu4_1", "relu4_2", "relu4_3",
            "relu5_1", "relu5_2", "relu5_3"}


def literal_official_features(model, images, layers):
    """Run VGG19 module by module; pad the bordered layers by reflection, resize to SIZE², mean over 4x4."""
    relu_names = {index: name for name, index in RELU_LAYERS.items()}
    activations, x = {}, images
    for index, module in enumerate(model.features):
        x = module(x)
        name = relu_names.get(index)
        if name in layers:
            activations[name] = F.pad(x, (1, 1, 1, 1), mode="reflect") if name in BORDERED else x
    resized = {name: F.interpolate(a, size=(SIZE, SIZE), mode="bilinear", align_corners=True)
               for name, a in activations.items()}
    return {name: F.avg_pool2d(resized[name], 4, 4) for name in layers}


@torch.no_grad()
def test_official_border_features_equal_a_literal_pad_then_resize():
    layers = list(RELU_LAYERS)
    official = vgg19(None, reflect_padding=True, official_border=True, seed=5)
    paper = vgg19(None, reflect_padding=True, seed=5)
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    ours = RegionalFeatureExtractor(official, layers, SIZE)(images)
    default = RegionalFeatureExtractor(paper, layers, SIZE)(images)
    literal = literal_official_features(paper, images, layers)
    shapes = {name: a.shape[-1] for name, a in official.forward_features(images, ["relu1_1", "relu1_2", "relu4_1"]).items()}
    assert shapes == {"relu1_1": SIZE + 2, "relu1_2": SIZE, "relu4_1": SIZE // 8 + 2}
    start = 0
    for name, channels in zip(layers, official.layer_channels(layers)):
        mine, theirs = ours[:, start:start + channels], default[:, start:start + channels]
        start += channels
        assert float((mine - literal[name]).norm() / literal[name].norm()) < 1e-5, name
        if name in BORDERED:
            assert float((mine - theirs).norm() / theirs.norm()) > 1e-3, name
        else:
            assert torch.equal(mine, theirs), name


def test_official_border_needs_vgg19_with_reflection_padding():
    with pytest.raises(ValueError, match="reflect_padding=True"):
        build_backbone("vgg19", None, reflect_padding=False, official_border=True)
    with pytest.raises(ValueError, match="backbone='vgg19'"):
        build_backbone("timm:resnet18", None, official_border=True)
    for options in ({"backbone": "timm:resnet18"}, {"reflect_padding": False}):
        model = PCAResidual(weights=None, image_size=32, official_border=True, device="cpu", **options)
        with pytest.raises(ValueError, match="official_border=True .* needs backbone='vgg19' with reflect_padding=True"):
            model.fit(np.zeros((4, 32, 32), np.float32))


@pytest.mark.parametrize("model_class,options", [
    (DFR, {"latent_dim": 3, "epochs": 2}),
    (PCAResidual, {}),
    (PatchMemoryBank, {"coreset_fraction": 0.5}),
])
def test_official_border_model_saves_and_loads(model_class, options, tmp_path):
    images = np.random.default_rng(0).random((5, 32, 32, 3), dtype=np.float32)
    model = model_class(weights=None, layers=("relu1_1", "relu1_2", "relu2_1"), image_size=32, official_border=True,
                        device="cpu", **options).fit(images)
    assert model.extractor_.backbone.official_border
    model.save(tmp_path / "model.dfr")
    loaded = dfr.load(tmp_path / "model.dfr", device="cpu")
    assert loaded.official_border and loaded.extractor_.backbone.official_border
    assert np.array_equal(loaded.anomaly_map(images), model.anomaly_map(images))

    # a file written before the option existed loads with the paper's features
    record = read_model_file(tmp_path / "model.dfr")
    del record["params"]["official_border"]
    write_model_file(tmp_path / "older.dfr", {k: v for k, v in record.items() if k not in RESERVED_KEYS})
    older = dfr.load(tmp_path / "older.dfr", device="cpu")
    assert not older.official_border and not older.extractor_.backbone.official_border
