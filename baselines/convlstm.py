"""ConvLSTM-AE: per-frame conv encoder, ConvLSTM temporal encoder-decoder, deconv decoder (Chong & Tay 2017 style)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from baselines.video import ClipModel
from dfr.api import params


def _valid_size(size: int) -> bool:
    """True when conv 11x11/4 then conv 5x5/2 cover the input exactly (S = 8k + 3, S >= 27)."""
    return size >= 27 and (size - 11) % 4 == 0 and ((size - 11) // 4 + 1 - 5) % 2 == 0


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM cell: the four gates are one ``kernel`` x ``kernel`` convolution of [x, h]."""

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        """(B, T, C, h, w) → hidden states (B, T, hidden, h, w), starting from zero state."""
        batch, _, _, height, width = sequence.shape
        h = sequence.new_zeros(batch, self.hidden, height, width)
        c = torch.zeros_like(h)
        outputs = []
        for x in sequence.unbind(1):
            i, f, g, o = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, 1)


class ConvLSTMNetwork(nn.Module):
    """(B, T, S, S) in [0, 1] → (B, T, S, S) in [0, 1].

    Per frame: conv 11x11 stride 4 (c1) → BN → ReLU → conv 5x5 stride 2 (c2) → BN → ReLU.
    Over time: three ConvLSTM cells, 3x3, of widths l1, l2, l3 (64, 32, 64 in the source).
    ``temporal="seq2seq"``: cells 1 and 2 read the whole window and the last output of cell 2
    is the window's code; cell 3 unrolls that code, repeated, into T steps. ``"stepwise"``:
    the three cells are stacked step by step, each frame passing through all of them (the
    source's wiring). Per frame again: transposed conv 5x5 stride 2 (c1) → BN → ReLU →
    transposed conv 11x11 stride 4 (1) → sigmoid. For S = 227 the maps are 55 and 26 wide.
    """

    def __init__(self, conv_channels: tuple[int, int], lstm_channels: tuple[int, int, int], temporal: str) -> None:
        super().__init__()
        c1, c2 = conv_channels
        l1, l2, l3 = lstm_channels
        self.seq2seq = temporal == "seq2seq"
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 11, stride=4), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Conv2d(c1, c2, 5, stride=2), nn.BatchNorm2d(c2), nn.ReLU(),
        )
        self.temporal = nn.ModuleList([ConvLSTMCell(c2, l1), ConvLSTMCell(l1, l2), ConvLSTMCell(l2, l3)])
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(l3, c1, 5, stride=2), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 11, stride=4), nn.Sigmoid(),
        )

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        batch, frames, height, width = windows.shape
        features = self.encoder(windows.reshape(batch * frames, 1, height, width)).unflatten(0, (batch, frames))
        first, bottleneck, last = self.temporal
        encoded = bottleneck(first(features))
        if self.seq2seq:
            encoded = encoded[:, -1:].expand(-1, frames, -1, -1, -1)
        return self.decoder(last(encoded).flatten(0, 1)).reshape(batch, frames, height, width)


class ConvLSTMAE(ClipModel):
    """Spatio-temporal autoencoder with a ConvLSTM temporal encoder-decoder (REFERENCE.md §5).

    Frames are converted to gray and resized to ``image_size`` squared; each window of
    ``window`` frames is encoded frame by frame, passed through the ConvLSTM cells in time
    order and decoded frame by frame (see :class:`ConvLSTMNetwork`). Windows, per-frame maps
    and scores, edge frames and short clips: see :class:`baselines.video.ClipModel`. Map
    unit: squared error of intensities in [0, 1]; frame score: its sum over the network's
    S x S pixels (the source's per-frame L2 cost; :meth:`regularity` gives its regularity).

    ``temporal`` picks how the three cells are wired. ``"seq2seq"`` (default) makes the
    window pass through one code (the bottleneck cell's last output), so the reconstruction
    must come from the window's regular motion; ``"stepwise"`` is the source's wiring, in which
    every frame reaches the decoder through all three cells at its own step: it can
    reconstruct each frame from itself and is far less sensitive to unusual motion (on the
    synthetic speed test of docs/baselines.md, frame ROC-AUC about 0.6 against 0.9).

    Args:
        preset: ``"source"`` (default: 227x227, conv widths 128/64, ConvLSTM 64/32/64, Adam
            1e-4, batch 8, 30 epochs over all windows; meant for a GPU) or ``"cpu"`` (59x59,
            conv 32/16, ConvLSTM 16/8/16, lr 3e-3, 20 epochs of at most 128 windows).
            Arguments left as ``None`` take the preset's value; :meth:`settings` shows them.
        temporal: ``"seq2seq"`` or ``"stepwise"`` (see above).
        image_size: side S of the network input; S = 8k + 3, at least 27 (…, 59, 67, …, 227).
        conv_channels: widths (c1, c2) of the two per-frame convolutions.
        lstm_channels: widths (l1, l2, l3) of the three ConvLSTM cells.
        clip: ``window``, ``strides``, ``test_hop``, ``windows_per_epoch``, ``epochs``, ``batch_size``,
            ``learning_rate`` (see :class:`baselines.video.ClipModel`), ``scoring``, ``seed``, ``device``
            (see :class:`dfr.AnomalyModel`).
    """

    PRESETS = {
        "source": {"image_size": 227, "conv_channels": (128, 64), "lstm_channels": (64, 32, 64),
                   "windows_per_epoch": None, "epochs": 30, "batch_size": 8, "learning_rate": 1e-4},
        "cpu": {"image_size": 59, "conv_channels": (32, 16), "lstm_channels": (16, 8, 16),
                "windows_per_epoch": 128, "epochs": 20, "batch_size": 8, "learning_rate": 3e-3},
    }

    PARAMETERS = {
        "image_size": params.size_rule(_valid_size, "8k + 3 and at least 27"),
        "temporal": params.literal("seq2seq", "stepwise"),
        "conv_channels": params.sequence_of(params.positive_int, 2),
        "lstm_channels": params.sequence_of(params.positive_int, 3),
    }

    def __init__(
        self,
        preset: str = "source",
        *,
        temporal: str = "seq2seq",
        conv_channels: Sequence[int] | None = None,
        lstm_channels: Sequence[int] | None = None,
        **clip: Any,
    ) -> None:
        super().__init__(preset, **clip)
        self.temporal = temporal
        self.conv_channels = None if conv_channels is None else tuple(conv_channels)
        self.lstm_channels = None if lstm_channels is None else tuple(lstm_channels)

    def _network(self) -> ConvLSTMNetwork:
        settings = self.settings()
        return ConvLSTMNetwork(tuple(settings["conv_channels"]), tuple(settings["lstm_channels"]), self.temporal)
