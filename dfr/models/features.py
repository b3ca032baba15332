"""DFR's multiscale regional feature map, computed without upsampling every layer.

The definition (REFERENCE.md §1): each layer's activation (C, h, w) is resized to S x S
(bilinear, ``align_corners=True``) and averaged over 4x4 windows with stride 4, giving
(C, S/4, S/4); the layers are then concatenated along channels.

Both steps are linear and separable, so for each layer the result equals ``A @ X @ B.T`` with
``A = P_S @ R_{S,h}`` (shape (S/4, h)) and ``B = P_S @ R_{S,w}``, where ``R`` is the bilinear
resize matrix and ``P`` the window-mean matrix. Applying the two small matrices costs a few
MFLOP per image instead of materialising (C, S, S) per layer (≈0.9 GB per image for the
paper's 12 layers). The result equals the literal definition up to float rounding.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from dfr.data.tiles import as_size

WINDOW = 4


def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Matrix (size_out, size_in) of 1-D bilinear resizing with ``align_corners=True``."""
    matrix = np.zeros((size_out, size_in))
    if size_in == 1:
        matrix[:, 0] = 1.0
        return matrix
    positions = np.arange(size_out) * (size_in - 1) / max(size_out - 1, 1)
    lower = np.minimum(np.floor(positions).astype(int), size_in - 2)
    fraction = positions - lower
    matrix[np.arange(size_out), lower] = 1.0 - fraction
    matrix[np.arange(size_out), lower + 1] += fraction
    return matrix


@lru_cache(maxsize=64)
def regional_matrix(size_in: int, image_size: int) -> np.ndarray:
    """Matrix (image_size / 4, size_in): resize to ``image_size``, then mean over windows of 4."""
    pooling = np.kron(np.eye(image_size // WINDOW), np.full((1, WINDOW), 1.0 / WINDOW))
    return pooling @ resize_matrix(size_in, image_size)


def regional_features(activations: dict[str, torch.Tensor], image_size: int | tuple[int, int]) -> torch.Tensor:
    """Concatenate the regional maps of all layers: (N, sum of C, H / 4, W / 4) for an
    ``image_size`` of (H, W) (an int: a square).

    The result is laid out channels-last in memory (one feature vector per position is
    contiguous), the layout the per-position autoencoder reads without copying.
    """
    image_size = as_size(image_size)
    if image_size[0] % WINDOW or image_size[1] % WINDOW:
        raise ValueError(f"image_size must be a multiple of {WINDOW} on both axes, got {image_size}")
    maps = []
    for activation in activations.values():
        height, width = activation.shape[-2:]
        rows = torch.as_tensor(regional_matrix(height, image_size[0]), dtype=activation.dtype, device=activation.device)
        cols = torch.as_tensor(regional_matrix(width, image_size[1]), dtype=activation.dtype, device=activation.device)
        maps.append(torch.einsum("ih,nchw,jw->nijc", rows, activation, cols))
    return torch.cat(maps, dim=3).permute(0, 3, 1, 2)


class RegionalFeatureExtractor(torch.nn.Module):
    """Frozen backbone + regional pooling: images (N, 3, H, W) → features (N, C, H/4, W/4).

    ``backbone`` follows the protocol of :mod:`dfr.models.backbones`; ``channels`` is C;
    ``image_size`` is (H, W).
    """

    def __init__(self, backbone: torch.nn.Module, layers: tuple[str, ...], image_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.layers = list(layers)
        self.image_size = as_size(image_size)
        self.channels = sum(backbone.layer_channels(self.layers))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return regional_features(self.backbone.forward_features(images, self.layers), self.image_size)
