"""PoolAE: the fully convolutional autoencoder of the swimming-pool report, with region masks."""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from baselines._common import PixelModel, ReconstructionError
from dfr import distributed
from dfr.api import params
from dfr.data.datasets import ImageDataset
from dfr.data.io import resize_image

KERNELS = (3, 5, 7, 9)
STEP = 2 ** len(KERNELS)  # network sides must be multiples of this
TRAINING_STEPS = 2000  # optimiser steps of epochs="auto"
PREPARED_CACHE = 128  # prepared training images kept in memory by each reading process


class PoolNetwork(nn.Module):
    """(B, 3, h, w) in [0, 1] → (B, 3, h, w), h and w multiples of 16.

    Four stride-2 convolutions with kernels 3, 5, 7, 9 and rising widths ``channels``, each
    followed by ReLU; four stride-2 transposed convolutions with kernels 9, 7, 5, 3 mirror
    them back to three channels, the last followed by a sigmoid. No dense layer, so any
    image size works.
    """

    def __init__(self, channels: tuple[int, int, int, int]) -> None:
        super().__init__()
        widths = (3, *channels)
        down: list[nn.Module] = []
        for kernel, a, b in zip(KERNELS, widths[:-1], widths[1:]):
            down += [nn.Conv2d(a, b, kernel, stride=2, padding=kernel // 2), nn.ReLU()]
        up: list[nn.Module] = []
        for kernel, a, b in zip(KERNELS[::-1], widths[:0:-1], widths[-2::-1]):
            up += [nn.ConvTranspose2d(a, b, kernel, stride=2, padding=kernel // 2, output_padding=1), nn.ReLU()]
        up[-1] = nn.Sigmoid()
        self.encoder = nn.Sequential(*down)
        self.decoder = nn.Sequential(*up)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(images))


class PoolAE(PixelModel):
    """Fully convolutional autoencoder for fixed-camera scenes with a region of interest.

    Each image is made RGB (gray repeated), its pixels outside the region are set to the mean
    colour inside it (at full resolution, so nothing outside can reach the network), and it is
    resized to ``width`` pixels wide (aspect kept). The loss is the squared error inside the
    region only (weighted by the region's coverage of each network pixel). The anomaly map is
    the squared error averaged over the colour channels, resized to the input's size and set
    to exactly zero outside the region (also after smoothing). Image score: by ``scoring``.

    ``fit(images, region_masks=...)``, ``predict(images, region_masks=...)`` and
    ``anomaly_map(images, region_masks=...)`` take one region per image (see
    :class:`dfr.data.ImageDataset`); without them the region is the whole image. For training
    images that contain the objects to detect, paint them out first with
    :func:`baselines.inpaint_boxes`.

    Training samples are augmented crops: per epoch, ``crops_per_image`` crops of
    ``crop_size`` squared per image, centred on a random region pixel, after a random
    rotation of up to ``max_rotation`` degrees, a horizontal flip (``flip``) and brightness
    and saturation factors drawn from ``1 ± brightness`` and ``1 ± saturation``.

    Args:
        preset: ``"source"`` (default: widths 32/64/128/256, 16 crops of 128 per image and
            epoch, Adam 1e-3, batch 8, 30 epochs; the report found 20-50 epochs best, longer
            lets it reconstruct swimmers) or ``"cpu"`` (widths 16/32/48/64, ``"auto"`` epochs,
            else the same). Arguments left as ``None`` take the preset's value;
            :meth:`settings` shows them.
        width: network image width in pixels (the report downscaled 1600x900 photos 5x, to
            320); ``None`` keeps each image's size.
        channels: widths of the four encoder convolutions.
        crop_size: side of the training crops, a multiple of 16.
        crops_per_image: training crops per image and epoch.
        flip, max_rotation, brightness, saturation: augmentation (see above).
        epochs, batch_size, learning_rate: Adam on the region-masked mean squared error;
            ``epochs="auto"`` (the cpu preset's) takes the fewest epochs that give
            ``TRAINING_STEPS`` optimiser steps, so that fitting costs about the same whatever
            the number of images.
        common: ``scoring``, ``seed``, ``device``; see :class:`dfr.AnomalyModel`.
    """

    fits_in_regions = True
    PRESETS = {
        "source": {"channels": (32, 64, 128, 256), "crop_size": 128, "crops_per_image": 16, "epochs": 30,
                   "batch_size": 8, "learning_rate": 1e-3},
        "cpu": {"channels": (16, 32, 48, 64), "crop_size": 128, "crops_per_image": 16, "epochs": "auto",
                "batch_size": 8, "learning_rate": 1e-3},
    }

    datasets = ("pool",)
    PARAMETERS = {
        "width": params.one_of(params.positive_int, None),
        "channels": params.sequence_of(params.positive_int, len(KERNELS)),
        "crop_size": params.size_rule(lambda side: side >= STEP and side % STEP == 0, f"a positive multiple of {STEP}"),
        "crops_per_image": params.positive_int,
        "flip": params.boolean,
        "max_rotation": params.non_negative,
        "brightness": params.interval(0, 1, high_open=True),
        "saturation": params.interval(0, 1, high_open=True),
        "epochs": params.one_of(params.positive_int, "auto"),
    }

    def __init__(
        self,
        preset: str = "source",
        *,
        width: int | None = 320,
        channels: Sequence[int] | None = None,
        crop_size: int | None = None,
        crops_per_image: int | None = None,
        flip: bool = True,
        max_rotation: float = 10.0,
        brightness: float = 0.1,
        saturation: float = 0.1,
        epochs: int | str | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.preset = preset
        self.width = width
        self.channels = None if channels is None else tuple(channels)
        self.crop_size = crop_size
        self.crops_per_image = crops_per_image
        self.flip = flip
        self.max_rotation = max_rotation
        self.brightness = brightness
        self.saturation = saturation
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate

    # ----------------------------------------------------------------- hooks

    def _network(self) -> PoolNetwork:
        return PoolNetwork(tuple(self.settings()["channels"]))

    def _prepare(self, image: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network-sized RGB image (h, w, 3), outside filled with the region's mean colour, and
        the region's coverage of each of its pixels, float32 (h, w) in [0, 1]."""
        rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
        fill = rgb[region].mean(0) if region.any() else rgb.reshape(-1, 3).mean(0)
        filled = np.where(region[:, :, None], rgb, fill.astype(np.float32))
        height, width = region.shape
        if self.width is not None:
            height, width = max(1, round(height * self.width / width)), self.width
        return resize_image(filled, height, width), resize_image(region.astype(np.float32), height, width)

    def _fit(self, pairs: ImageDataset) -> None:
        settings = self.settings()
        if settings["epochs"] == "auto":
            steps_per_epoch = math.ceil(distributed.total(len(pairs)) * settings["crops_per_image"] / settings["batch_size"])
            settings["epochs"] = math.ceil(TRAINING_STEPS / steps_per_epoch)
        with self._seeded():
            self.network_ = self._network().to(self.device_)
            crops = _Crops(self, pairs, settings["crops_per_image"], settings["crop_size"])
            self._train(crops, self._masked_loss, settings)

    @staticmethod
    def _masked_loss(network: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Mean squared error over the pixels inside the regions: ``batch`` is (images, weights (B, 1, h, w))."""
        images, weights = batch
        squared = (network(images) - images).pow(2).mean(1, keepdim=True)
        return (squared * weights).sum() / weights.sum().clamp_min(1.0)

    def _augment(self, image: np.ndarray, weight: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented crop: image (size, size, 3) with the outside refilled, weights (size, size)."""
        height, width = weight.shape
        if self.max_rotation:
            angle = rng.uniform(-self.max_rotation, self.max_rotation)
            matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
            image = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            weight = cv2.warpAffine(weight, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=0.0)
        if self.flip and rng.random() < 0.5:
            image, weight = image[:, ::-1], weight[:, ::-1]
        gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[:, :, None]
        colour = rng.uniform(1 - self.saturation, 1 + self.saturation)
        image = np.clip((gray + colour * (image - gray)) * rng.uniform(1 - self.brightness, 1 + self.brightness), 0, 1)
        inside = weight > 0.5
        fill = image[inside].mean(0) if inside.any() else image.reshape(-1, 3).mean(0)
        canvas = np.empty((max(height, size), max(width, size), 3), np.float32)
        canvas[:] = fill
        canvas[:height, :width] = np.where(inside[:, :, None], image, fill)
        image, weight = canvas, np.pad(weight, ((0, canvas.shape[0] - height), (0, canvas.shape[1] - width)))
        candidates = np.argwhere(inside) if inside.any() else np.array([[height // 2, width // 2]])
        y, x = candidates[rng.integers(len(candidates))]
        top = int(np.clip(y - size // 2, 0, image.shape[0] - size))
        left = int(np.clip(x - size // 2, 0, image.shape[1] - size))
        crop = (slice(top, top + size), slice(left, left + size))
        return np.ascontiguousarray(image[crop], dtype=np.float32), np.ascontiguousarray(weight[crop], dtype=np.float32)

    def _inference_network(self) -> ReconstructionError:
        return ReconstructionError(self.network_, power=2, channel_mean=True)

    def input_spec(self) -> dict[str, Any]:
        return {"shape": [None, 3, None, None], "layout": "NCHW", "channels": "RGB", "range": [0.0, 1.0],
                "normalisation": None, "multiple_of": STEP,
                "resize": f"to width {self.width} (aspect kept), outside the region filled with its mean colour, "
                          f"edge-padded to a multiple of {STEP}" if self.width else
                          f"none; outside the region filled with its mean colour, edge-padded to a multiple of {STEP}"}

    def _maps(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        maps = []
        for image, region in pairs:
            prepared, _ = self._prepare(image, region)
            height, width = prepared.shape[:2]
            padded = np.pad(prepared, ((0, -height % STEP), (0, -width % STEP), (0, 0)), mode="edge")
            batch = torch.from_numpy(padded).permute(2, 0, 1)[None]
            squared = self._run_network(batch)[0, :height, :width].numpy()
            full = resize_image(squared, *region.shape)
            maps.append(np.where(region, full, 0.0).astype(np.float32))
        return maps


class _Crops(Dataset):
    """PoolAE's training samples: ``crops_per_image`` augmented crops of every (image, region)
    pair, each drawn from a generator seeded by (seed, epoch, image, crop), so that the crops do
    not depend on which worker or which of several processes makes them. The last ``PREPARED_CACHE`` prepared images
    are kept, so a small training set is decoded once."""

    def __init__(self, model: PoolAE, pairs: ImageDataset, crops_per_image: int, size: int) -> None:
        self.model, self.pairs, self.crops_per_image, self.size = model, pairs, crops_per_image, size
        self.epoch = 0
        self.prepared: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs) * self.crops_per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, weight = self._prepared(index // self.crops_per_image)
        source = int(self.pairs.indices[index // self.crops_per_image])  # the image's index in the input
        rng = np.random.default_rng([self.model.seed, self.epoch, source, index % self.crops_per_image])
        image, weight = self.model._augment(image, weight, self.size, rng)
        return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(weight)[None]

    def _prepared(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index not in self.prepared:
            self.prepared[index] = self.model._prepare(*self.pairs[index])
            if len(self.prepared) > PREPARED_CACHE:
                self.prepared.popitem(last=False)
        self.prepared.move_to_end(index)
        return self.prepared[index]
