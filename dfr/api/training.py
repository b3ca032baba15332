"""The one training loop of every trained network in dfr (DFR's autoencoder, the raw-pixel baselines)."""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from dfr import distributed


def train(
    name: str,
    network: torch.nn.Module,
    epochs: int,
    batches: Callable[[int], Iterable[Any]],
    loss: Callable[[torch.nn.Module, Any], torch.Tensor],
    *,
    learning_rate: float,
    weight_decay: float = 0.0,
) -> list[float]:
    """Train ``network`` with Adam on ``loss(network, batch)`` for ``epochs`` epochs; return the
    mean loss of each epoch.

    ``batches(epoch)`` yields the batches of epoch ``epoch`` (0, 1, …), already on the network's
    device. Under torch.distributed the network is wrapped in DistributedDataParallel (gradients
    averaged over processes), every process takes as many steps as the one with the fewest
    batches (:func:`dfr.distributed.lockstep`), and the losses are averaged over processes. A
    progress bar named ``name`` shows the latest loss. The network is left in eval mode.
    """
    optimiser = torch.optim.Adam(network.parameters(), lr=learning_rate, weight_decay=weight_decay)
    wrapped = distributed.parallel(network)
    wrapped.train()
    history: list[float] = []
    progress = tqdm(range(epochs), desc=f"{name}: training", unit="epoch",
                    disable=None if distributed.is_main() else True)
    for epoch in progress:
        total, count = 0.0, 0
        for batch in distributed.lockstep(batches(epoch)):
            value = loss(wrapped, batch)
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            optimiser.step()
            total, count = total + value.item(), count + 1
        if count == 0:
            raise ValueError(f"{name}: no training batch could be formed from the training data")
        history.append(float(distributed.all_reduce(np.array([total / count]), "sum")[0]) / distributed.world_size())
        progress.set_postfix(loss=f"{history[-1]:.4g}")
    network.eval()
    return history
