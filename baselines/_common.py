"""What the raw-pixel baselines share: the base class, its persistence, the reconstruction error, gray frames."""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from dfr import distributed
from dfr.api import params
from dfr.api.model import AnomalyModel
from dfr.api.training import train
from dfr.data.datasets import training_loader

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

    PARAMETERS = {
        "epochs": params.positive_int,
        "batch_size": params.positive_int,
        "learning_rate": params.interval(0, 1, low_open=True),
        "weight_decay": params.non_negative,
    }

    def _network(self) -> torch.nn.Module:
        raise NotImplementedError

    def _train(
        self, dataset: Dataset, loss: Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
        settings: dict[str, Any], samples_per_epoch: int | None = None,
    ) -> None:
        """Train ``network_`` on ``loss(network, batch)`` (:func:`dfr.api.training.train`) for
        ``settings["epochs"]`` epochs; ``batch`` is a tuple of tensors on the model's device.

        ``dataset`` yields a tensor or a tuple of tensors per sample; each epoch draws
        ``samples_per_epoch`` of them (default: all) in a seeded random order, in batches of
        ``settings["batch_size"]`` (a last batch of one is dropped: batch normalisation needs
        two), read by ``workers`` processes. A dataset with ``set_epoch`` is told the epoch
        first. Under torch.distributed each process draws its share of the samples from its
        own shard. Sets ``training_loss_`` and ``fit_seconds_``.
        """
        world = distributed.world_size()
        samples = math.ceil((samples_per_epoch or len(dataset) * world) / world)  # per process
        batch_size = settings["batch_size"]
        loader = training_loader(dataset, batch_size, samples=samples, seed=self.seed + distributed.rank(),
                                 workers=self.workers, device=self.device_, drop_last=samples % batch_size == 1)

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(epoch)
            for batch in loader:
                batch = batch if isinstance(batch, (tuple, list)) else (batch,)
                yield tuple(tensor.to(self.device_, non_blocking=True) for tensor in batch)

        started = time.perf_counter()
        self.training_loss_ = train(type(self).__name__, self.network_, settings["epochs"], batches, loss,
                                    learning_rate=settings["learning_rate"],
                                    weight_decay=settings.get("weight_decay", 0.0))
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


def reconstruction_loss(network: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean squared error of ``network``'s reconstruction of the batch's inputs (its first tensor)."""
    return F.mse_loss(network(batch[0]), batch[0])
