"""CAE: the single-frame convolutional autoencoder with a dense bottleneck (UCSD Ped1 notebook)."""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from baselines._common import (
    INFERENCE_BATCH,
    PixelModel,
    ReconstructionError,
    reconstruction_loss,
)
from dfr.api import params
from dfr.api.tiled import TiledModel
from dfr.data.datasets import ImageDataset, Mapped
from dfr.data.io import resize_image, to_gray
from dfr.data.tiles import as_size

# The source's fixed rule: a pixel is anomalous when the 4x4 box sum of |error| x 255 exceeds 4·255.
FIXED_THRESHOLD = 4.0 * 255.0
BOX = 4


class CAENetwork(nn.Module):
    """(B, 1, H, W) in [0, 1] → (B, 1, H, W) in [0, 1], for a ``size`` (H, W).

    Encoder: conv 5x5 (``channels``) + ReLU, max-pool 2, conv 5x5 (``channels``) + ReLU,
    max-pool 2, dense layer to ``bottleneck`` values. Decoder: dense back to
    ``channels`` x (H/4 - 3) x (W/4 - 3) + ReLU, upsample 2, transposed conv 5x5 + ReLU,
    upsample 2, transposed conv 5x5 to one channel + sigmoid. Convolutions are unpadded, so
    for 100 x 100 the code map is 32 x 22 x 22, as in the source.
    """

    def __init__(self, size: tuple[int, int], channels: int, bottleneck: int) -> None:
        super().__init__()
        code_height, code_width = (((side - 4) // 2 - 4) // 2 for side in size)
        code_shape = (channels, code_height, code_width)
        code_size = channels * code_height * code_width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, channels, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(code_size, bottleneck),
        )
        self.decoder = nn.Sequential(
            nn.Linear(bottleneck, code_size), nn.ReLU(), nn.Unflatten(1, code_shape),
            nn.Upsample(scale_factor=2), nn.ConvTranspose2d(channels, channels, 5), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.ConvTranspose2d(channels, 1, 5), nn.Sigmoid(),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(frames))


class CAE(PixelModel, TiledModel):
    """Convolutional autoencoder on single gray frames with a dense bottleneck (REFERENCE.md §5).

    Each image is converted to gray (BT.601 luma) and resized to ``image_size``. The
    anomaly map is the source's heatmap: ``|input - reconstruction| x 255`` summed over a 4x4
    box (zero outside the image), computed at network resolution and resized to the input's
    size (bilinear when enlarging, area when shrinking). Its unit is therefore "grey levels summed over 16 pixels" (0 to 4080). Image
    score: by ``scoring`` (see :class:`dfr.scoring.ScoringSettings`).

    Args:
        preset: ``"source"`` (default: the notebook's 100x100 input, 32 channels, bottleneck
            2000, Adam 1e-4, weight decay 1e-5, batch 32, 30 epochs) or ``"cpu"`` (64x64, 16
            channels, bottleneck 256, lr 1e-3, 40 epochs). Arguments left as ``None`` take the
            preset's value; :meth:`settings` shows what a fit uses.
        image_size: the network input: a side S (a square) or (height, width), each a
            multiple of 4 and at least 16.
        channels: channels of both convolutions.
        bottleneck: width of the dense code. Without it, anomalies are reconstructed too.
        epochs, batch_size, learning_rate, weight_decay: Adam on the mean squared error.
        threshold_rule: ``"target_fpr"`` (default: the shared rule, fitted on held-out normal
            data) or ``"fixed"`` (the source's ``4 x 255``, in the map's unit).
        common: ``tile_overlap`` (:class:`dfr.api.tiled.TiledModel`), ``scoring``, ``seed``,
            ``device`` (:class:`dfr.AnomalyModel`). ``tile_size`` (:class:`dfr.api.tiled.TiledModel`)
            is ``None`` by default: the source's model resizes every image whole.
    """

    PRESETS = {
        "source": {"image_size": 100, "channels": 32, "bottleneck": 2000, "epochs": 30, "batch_size": 32,
                   "learning_rate": 1e-4, "weight_decay": 1e-5},
        "cpu": {"image_size": 64, "channels": 16, "bottleneck": 256, "epochs": 40, "batch_size": 16,
                "learning_rate": 1e-3, "weight_decay": 1e-5},
    }

    datasets = ("mvtec", "ucsd")
    PARAMETERS = {
        "image_size": params.size_rule(lambda side: side >= 16 and side % 4 == 0, "a multiple of 4 and at least 16",
                                       rectangles=True),
        "channels": params.positive_int,
        "bottleneck": params.positive_int,
        "threshold_rule": params.literal("target_fpr", "fixed"),
    }
    CONSTRAINTS = (params.Constraint(
        ("threshold_rule", "scoring"), lambda rule, scoring: rule != "fixed" or not scoring.normalise_positions,
        "threshold_rule='fixed' is in raw error units and cannot apply to maps divided by their normal level "
        "(normalise_positions=True); use threshold_rule='target_fpr'"),)

    def __init__(
        self,
        preset: str = "source",
        *,
        image_size: int | tuple[int, int] | None = None,
        channels: int | None = None,
        bottleneck: int | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        weight_decay: float | None = None,
        threshold_rule: str = "target_fpr",
        tile_size: int | tuple[int, int] | str | None = None,
        **common: Any,
    ) -> None:
        super().__init__(tile_size=tile_size, **common)
        self.preset = preset
        self.image_size = image_size
        self.channels = channels
        self.bottleneck = bottleneck
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.threshold_rule = threshold_rule

    def network_size(self) -> tuple[int, int]:
        return as_size(self.settings()["image_size"])

    def _network(self) -> CAENetwork:
        settings = self.settings()
        return CAENetwork(self.network_size(), settings["channels"], settings["bottleneck"])

    def _input(self, image: np.ndarray) -> torch.Tensor:
        """One image → its network input (1, h, w) float32 on CPU."""
        return torch.from_numpy(resize_image(to_gray(image), *self.network_size()))[None]

    def _fit(self, images: ImageDataset) -> None:
        with self._seeded():
            self.network_ = self._network().to(self.device_)
            self._train(Mapped(images, self._input), reconstruction_loss, self.settings())

    def _fit_scoring(self, held_out: ImageDataset) -> None:
        super()._fit_scoring(held_out)
        if self.threshold_rule == "fixed":
            self.threshold_ = FIXED_THRESHOLD

    def _inference_network(self) -> ReconstructionError:
        return ReconstructionError(self.network_, power=1, scale=255.0, channel_mean=True)

    def input_spec(self) -> dict[str, Any]:
        return {"shape": [None, 1, *self.network_size()], "layout": "NCHW", "channels": "gray", "range": [0.0, 1.0],
                "normalisation": None, "resize": "area when shrinking, else bilinear, to the network size",
                **self.tiling_spec()}

    def _view_maps(self, images: list[np.ndarray]) -> list[np.ndarray]:
        maps = []
        for start in range(0, len(images), INFERENCE_BATCH):
            batch = torch.stack([self._input(image) for image in images[start:start + INFERENCE_BATCH]])
            errors = self._run_network(batch).numpy()
            for error in errors:
                height, width = images[len(maps)].shape[:2]
                heat = cv2.boxFilter(error, -1, (BOX, BOX), normalize=False, borderType=cv2.BORDER_CONSTANT)
                maps.append(resize_image(heat, height, width).astype(np.float32))
        return maps
