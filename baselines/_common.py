"""Machinery shared by the raw-pixel baselines: presets, seeding, the training loop, persistence."""
from __future__ import annotations

import math
import time
from typing import Any, Callable, ClassVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from dfr import distributed
from dfr.data import training_loader
from dfr.model import AnomalyModel

INFERENCE_BATCH = 16


class ReconstructionError(torch.nn.Module):
    """An autoencoder's per-pixel error: ``|x̂ - x| * scale`` (``power=1``) or ``(x̂ - x)²``
    (``power=2``), averaged over the channel axis (1) when ``channel_mean``: (B, C, H, W) →
    (B, H, W), or, without it, the shape of the input (e.g. (B, T, H, W) windows)."""

    def __init__(self, network: torch.nn.Module, *, power: int, scale: float = 1.0, channel_mean: bool = False) -> None:
        super().__init__()
        self.network, self.power, self.scale, self.channel_mean = network, power, scale, channel_mean

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        difference = self.network(batch) - batch
        error = difference.abs() * self.scale if self.power == 1 else difference.pow(2)
        return error.mean(1) if self.channel_mean else error


class PixelModel(AnomalyModel):
    """Base of the raw-pixel autoencoders: one ``torch.nn.Module`` trained with Adam.

    Subclasses set ``PRESETS`` (preset name → training and size arguments) and keep those
    arguments as constructor parameters defaulting to ``None``: a ``None`` takes the preset's
    value (see :meth:`settings`). They build their network from the settings in
    ``_network()``, so that saving stores only its weights.

    Learned attributes: ``network_``, ``training_loss_`` (mean loss per epoch),
    ``fit_seconds_`` (wall time of training; not saved, so that a seed gives the same model
    file), ``threshold_``, ``score_stats_``.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def settings(self) -> dict[str, Any]:
        """The preset's settings, overridden by the arguments not left as ``None``."""
        return self._preset_settings(self.PRESETS)

    def _network(self) -> torch.nn.Module:
        raise NotImplementedError

    def _train(
        self, dataset: Dataset, loss_function: Callable[..., torch.Tensor], settings: dict[str, Any],
        samples_per_epoch: int | None = None,
    ) -> None:
        """Adam on ``loss_function(*batch)`` for ``settings["epochs"]`` epochs.

        ``dataset`` yields a tensor or a tuple of tensors per sample; each epoch draws
        ``samples_per_epoch`` of them (default: all) in a seeded random order, in batches of
        ``settings["batch_size"]`` (a last batch of one is dropped: batch normalisation needs
        two), read by ``workers`` processes. A dataset with ``set_epoch`` is told the epoch
        first. Under torch.distributed each process draws its share of the samples from its
        own shard, batches are per process and the network is trained with
        DistributedDataParallel (gradients averaged). Sets ``training_loss_`` and ``fit_seconds_``.
        """
        optimiser = torch.optim.Adam(
            self.network_.parameters(), lr=settings["learning_rate"], weight_decay=settings.get("weight_decay", 0.0)
        )
        world = distributed.world_size()
        samples = math.ceil((samples_per_epoch or len(dataset) * world) / world)  # per process
        batch_size = settings["batch_size"]
        loader = training_loader(dataset, batch_size, samples=samples, seed=self.seed + distributed.rank(),
                                 workers=self.workers, device=self.device_, drop_last=samples % batch_size == 1)
        started = time.perf_counter()
        network, self.network_ = self.network_, distributed.parallel(self.network_)  # the losses call self.network_
        self.network_.train()
        self.training_loss_ = []
        name = type(self).__name__
        progress = tqdm(range(settings["epochs"]), desc=f"{name}: training", unit="epoch",
                        disable=None if distributed.is_main() else True)
        try:
            for epoch in progress:
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(epoch)
                total, count = 0.0, 0
                for batch in distributed.lockstep(loader):
                    batch = batch if isinstance(batch, (tuple, list)) else (batch,)
                    loss = loss_function(*(tensor.to(self.device_, non_blocking=True) for tensor in batch))
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    total, count = total + loss.item(), count + 1
                if count == 0:
                    raise ValueError(f"{name}: no training batch could be formed from the training data")
                self.training_loss_.append(float(distributed.all_reduce(np.array([total / count]), "sum")[0]) / world)
                progress.set_postfix(loss=f"{self.training_loss_[-1]:.4g}")
        finally:
            self.network_ = network
        self.network_.eval()
        self.fit_seconds_ = time.perf_counter() - started

    def _state(self) -> dict[str, Any]:
        return {
            "network": {name: value.detach().cpu() for name, value in self.network_.state_dict().items()},
            "training_loss": list(self.training_loss_),
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self.network_ = self._network()
        self.network_.load_state_dict(state["network"])
        self.network_.to(self.device_).eval()
        self.training_loss_ = list(state["training_loss"])


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, 1|3) float32 → (H, W) float32; colour by ITU-R BT.601 luma (OpenCV's RGB2GRAY)."""
    if image.shape[2] == 1:
        return image[:, :, 0]
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W[, C]) float32: area interpolation when shrinking, bilinear when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrink = image.shape[0] > height or image.shape[1] > width
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return resized.reshape(height, width, *image.shape[2:])


def check_size(name: str, size: int, valid: Callable[[int], bool], rule: str) -> None:
    """Raise with the nearest valid sizes unless ``valid(size)``."""
    if valid(size):
        return
    below = next((s for s in range(size - 1, 0, -1) if valid(s)), None)
    above = next(s for s in range(size + 1, 10 * size + 1000) if valid(s))
    nearest = " or ".join(str(s) for s in (below, above) if s is not None)
    raise ValueError(f"{name} image_size must be {rule}, got {size}; nearest valid: {nearest}")
