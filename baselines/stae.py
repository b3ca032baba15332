"""STAE: a spatio-temporal autoencoder on T frames stacked as channels (Hasan et al. 2016 style)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from baselines._common import ReconstructionError
from baselines.video import ClipModel
from dfr.api import params


def _code_side(size: int) -> int:
    """Side of the code map for input side ``size``, or 0 when the decoder cannot mirror it."""
    if size < 15 or (size - 15) % 4:
        return 0
    side = (size - 15) // 4 + 1  # conv 15x15 / 4
    if side % 2:
        return 0
    side = side // 2 - 3  # pool 2, conv 4x4
    if side < 1 or side % 2:
        return 0
    return max(side // 2 - 2, 0)  # pool 2, conv 3x3


class STAENetwork(nn.Module):
    """(B, T, S, S) in [0, 1] → (B, T, S, S) in [0, 1]; the T frames are the channels.

    Encoder: conv 15x15 stride 4 (c1) → BN → ReLU → max-pool 2 → conv 4x4 (c2) → BN → ReLU →
    max-pool 2 → conv 3x3 (c3) → BN → ReLU. The decoder mirrors it with transposed
    convolutions and nearest-neighbour upsampling, ending in T channels and a sigmoid.
    Unpadded, so for S = 227 the maps are 54, 27, 24, 12 and 10 pixels wide.
    """

    def __init__(self, frames: int, channels: tuple[int, int, int]) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(frames, c1, 15, stride=4), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 4), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3), nn.BatchNorm2d(c3), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 3), nn.BatchNorm2d(c2), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.ConvTranspose2d(c2, c1, 4), nn.BatchNorm2d(c1), nn.ReLU(), nn.Upsample(scale_factor=2),
            nn.ConvTranspose2d(c1, frames, 15, stride=4), nn.Sigmoid(),
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(windows))


class SubPixelTransposedConv(nn.Module):
    """``layer`` (a square transposed convolution, stride s, kernel k, no padding) computed as
    one ordinary convolution to s² times the output channels followed by a pixel shuffle: the
    kernel, padded to a multiple of s, splits into s x s phase kernels of ceil(k / s) taps. The
    output equals the layer's to float rounding; for STAE's 15x15 stride-4 layer it is about
    1.3x faster in torch and in onnxruntime on a CPU. Shares the layer's parameters."""

    def __init__(self, layer: nn.ConvTranspose2d) -> None:
        super().__init__()
        (stride, other_stride), (kernel, other_kernel) = layer.stride, layer.kernel_size
        if stride != other_stride or kernel != other_kernel or any(layer.padding) or any(layer.output_padding) \
                or layer.groups != 1 or any(d != 1 for d in layer.dilation):
            raise ValueError(f"{layer} is not a square, unpadded, ungrouped transposed convolution")
        self.layer, self.stride, self.kernel, self.taps = layer, stride, kernel, -(-kernel // stride)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        stride, taps = self.stride, self.taps
        weight = self.layer.weight  # (in, out, k, k)
        inputs_channels, outputs_channels = weight.shape[:2]
        padded = F.pad(weight, (0, taps * stride - self.kernel) * 2)
        phases = padded.reshape(inputs_channels, outputs_channels, taps, stride, taps, stride).flip(2, 4)
        phases = phases.permute(1, 3, 5, 0, 2, 4).reshape(outputs_channels * stride**2, inputs_channels, taps, taps)
        bias = None if self.layer.bias is None else self.layer.bias.repeat_interleave(stride**2)
        outputs = F.pixel_shuffle(F.conv2d(inputs, phases, bias, padding=taps - 1), stride)
        height, width = ((side - 1) * stride + self.kernel for side in inputs.shape[-2:])
        return outputs[..., :height, :width]


class STAE(ClipModel):
    """Spatio-temporal autoencoder: ``window`` consecutive gray frames stacked as channels.

    Frames are converted to gray and resized to ``image_size`` squared; the network
    reconstructs the whole stack. Windows, per-frame maps and scores, edge frames and short
    clips: see :class:`baselines.video.ClipModel`. Map unit: squared error of intensities in
    [0, 1]; frame score: its sum over the network's S x S pixels.

    Args:
        preset: ``"source"`` (default: 227x227, channels 512/256/128, Adam 1e-4, batch 16,
            30 epochs over all windows; meant for a GPU) or ``"cpu"`` (115x115, channels
            32/16/16, lr 3e-3, 20 epochs of at most 128 windows). Arguments left as ``None``
            take the preset's value; :meth:`settings` shows what a fit uses.
        image_size: side S of the network input; the unpadded layers need S = 16k + 19 with
            S >= 83 (83, 99, 115, …, 227, …).
        channels: widths (c1, c2, c3) of the three encoder convolutions.
        clip: ``window``, ``strides``, ``test_hop``, ``windows_per_epoch``, ``epochs``, ``batch_size``,
            ``learning_rate`` (see :class:`baselines.video.ClipModel`), ``scoring``, ``seed``, ``device``
            (see :class:`dfr.AnomalyModel`).
    """

    PRESETS = {
        "source": {"image_size": 227, "channels": (512, 256, 128), "windows_per_epoch": None, "epochs": 30,
                   "batch_size": 16, "learning_rate": 1e-4},
        "cpu": {"image_size": 115, "channels": (32, 16, 16), "windows_per_epoch": 128, "epochs": 20,
                "batch_size": 16, "learning_rate": 3e-3},
    }

    PARAMETERS = {
        "image_size": params.size_rule(lambda side: _code_side(side) >= 1, "16k + 19 and at least 83"),
        "channels": params.sequence_of(params.positive_int, 3),
    }

    def __init__(
        self,
        preset: str = "source",
        *,
        channels: Sequence[int] | None = None,
        **clip: Any,
    ) -> None:
        super().__init__(preset, **clip)
        self.channels = None if channels is None else tuple(channels)

    def _network(self) -> STAENetwork:
        return STAENetwork(self.window, tuple(self.settings()["channels"]))

    def _inference_network(self) -> ReconstructionError:
        """The trained network with its last transposed convolution computed as a sub-pixel
        convolution (:class:`SubPixelTransposedConv`, the same maps, faster), and the squared error."""
        encoder, decoder = self.network_.encoder, self.network_.decoder
        network = nn.Sequential(encoder, decoder[:-2], SubPixelTransposedConv(decoder[-2]), decoder[-1])
        return ReconstructionError(network, power=2)
