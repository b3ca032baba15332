import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dfr.models.backbones.vgg import PAPER_LAYERS, VGG19
from dfr.models.features import regional_features, resize_matrix


def literal_regional_features(activations, size):
    """REFERENCE.md §1 as written: resize each layer to size², average 4x4 windows, concatenate."""
    return torch.cat(
        [F.avg_pool2d(F.interpolate(a, size=(size, size), mode="bilinear", align_corners=True), 4, 4)
         for a in activations.values()],
        dim=1,
    )


@pytest.mark.parametrize("size_in,size_out", [(1, 5), (2, 9), (7, 32), (64, 64), (40, 16)])
def test_resize_matrix_matches_torch(size_in, size_out):
    x = torch.rand(1, 1, 1, size_in, dtype=torch.float64)
    expected = F.interpolate(x, size=(1, size_out), mode="bilinear", align_corners=True)[0, 0, 0]
    assert np.allclose(resize_matrix(size_in, size_out) @ x[0, 0, 0].numpy(), expected.numpy(), atol=1e-12)


def test_regional_features_equal_the_literal_definition_on_vgg19():
    torch.manual_seed(0)
    model = VGG19(reflect_padding=True).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        activations = model.forward_features(images, list(PAPER_LAYERS))
        ours = regional_features(activations, 64)
        literal = literal_regional_features(activations, 64)
    assert ours.shape == (2, 3456, 16, 16)
    scale = literal.abs().max()
    assert torch.allclose(ours, literal, atol=1e-5 * float(scale), rtol=0)


def test_regional_features_paper_size_and_odd_shapes():
    torch.manual_seed(0)
    activations = {"a": torch.rand(1, 3, 256, 256), "b": torch.rand(1, 2, 32, 32), "c": torch.rand(1, 2, 5, 3)}
    ours = regional_features(activations, 256)
    assert ours.shape == (1, 7, 64, 64)
    assert torch.allclose(ours, literal_regional_features(activations, 256), atol=1e-5)
    with pytest.raises(ValueError, match="multiple of 4"):
        regional_features(activations, 30)
