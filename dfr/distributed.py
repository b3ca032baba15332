"""torch.distributed in the few forms dfr needs; each is the identity in a single process.

A run under ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``) joins the process group on first use: gloo for tensors
on the CPU (dfr's own counts and gathers always go this way) and, where there are GPUs, nccl
for tensors on them (the gradients of DistributedDataParallel). A rank that waits for the
others gives up after ``DFR_DISTRIBUTED_TIMEOUT`` seconds (default 7200: rank 0 alone
evaluates a benchmark run while the others wait). Without those variables everything runs
in one process.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Iterable, Iterator

import numpy as np
import torch
import torch.distributed as dist


def launched() -> bool:
    """Whether this process was started as one of several (``WORLD_SIZE`` > 1 in the environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> None:
    """Join the process group if this process was launched as one of several and has not yet."""
    if launched() and not dist.is_initialized():
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank < gpus:
            torch.cuda.set_device(local_rank)
        timeout = timedelta(seconds=float(os.environ.get("DFR_DISTRIBUTED_TIMEOUT", "7200")))
        dist.init_process_group("cpu:gloo,cuda:nccl" if gpus else "gloo", timeout=timeout)


def shutdown() -> None:
    """Leave the process group, if this process joined one: at the end of a command, so that
    the group's threads stop before the interpreter does (a process that exits with them
    running can abort)."""
    if dist.is_initialized():
        dist.destroy_process_group()


_local_depth = 0


def active() -> bool:
    """Whether a process group of more than one process is in use (and not inside :func:`local`)."""
    init()
    return _local_depth == 0 and dist.is_initialized() and dist.get_world_size() > 1


@contextmanager
def local() -> Iterator[None]:
    """Inside, this process acts alone (rank 0 of 1): for work that only one rank does, such
    as rank 0 evaluating and writing a benchmark run."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


def rank() -> int:
    """This process's rank under torch.distributed (0 otherwise)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """Number of processes under torch.distributed (1 otherwise)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this is rank 0 (the process that writes shared files and prints)."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """On a multi-GPU run each rank takes the GPU of its ``LOCAL_RANK``."""
    if device.type == "cuda" and active():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shard(count: int) -> np.ndarray:
    """This rank's share of ``count`` items: indices ``rank, rank + world, …``."""
    return np.arange(rank(), count, world_size())


def all_reduce(values: np.ndarray, op: str) -> np.ndarray:
    """``values`` (float64) combined over all ranks by ``"sum"``, ``"min"`` or ``"max"``."""
    if not active():
        return np.asarray(values, np.float64)
    tensor = torch.from_numpy(np.array(values, np.float64))
    dist.all_reduce(tensor, {"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    return tensor.numpy()


def total(count: int) -> int:
    """``count`` summed over all ranks."""
    return int(all_reduce(np.array([count]), "sum")[0])


def all_gather(value: Any) -> list[Any]:
    """Every rank's ``value`` (any picklable object), in rank order."""
    if not active():
        return [value]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_all(error: BaseException | None) -> None:
    """Raise on every rank when any rank has an ``error``: the first rank's, with its rank.

    Call it where every rank arrives, with the rank's own exception or ``None``, so that one
    bad file stops all ranks with its message instead of leaving the others waiting.
    """
    if not active():
        if error is not None:
            raise error
        return
    errors = all_gather(None if error is None else (type(error).__name__, str(error)))
    for index, found in enumerate(errors):
        if found is not None:
            kind, message = found
            if error is not None and index == rank():
                raise error
            exception = {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError,
                         "TypeError": TypeError}.get(kind, RuntimeError)
            raise exception(f"rank {index}: {message}")


@contextmanager
def together() -> Iterator[None]:
    """Run a block of local work (no communication inside) on every rank; if it raises on any
    rank, every rank raises on leaving it, with that rank's message, instead of waiting for
    the failed rank."""
    error = None
    try:
        yield
    except Exception as caught:
        error = caught
    check_all(error)


def lockstep(items: Iterable[Any]) -> Iterator[Any]:
    """``items`` in step with every other rank: all ranks stop as soon as one runs out (so
    each takes the same number of steps, as DistributedDataParallel needs), and an error
    while one rank fetches its next item stops every rank with that rank's message."""
    iterator = iter(items)
    while True:
        item, error, done = None, None, False
        try:
            item = next(iterator)
        except StopIteration:
            done = True
        except Exception as caught:
            error = caught
        if active():
            failed, finished = all_reduce(np.array([error is not None, done], np.float64), "max")
            if failed:
                check_all(error)
            done = bool(finished)
        elif error is not None:
            raise error
        if done:
            return
        yield item


def parallel(network: torch.nn.Module) -> torch.nn.Module:
    """``network`` wrapped in DistributedDataParallel (gradients averaged over ranks), or itself
    in a single process."""
    if not active():
        return network
    device = next(network.parameters()).device
    return torch.nn.parallel.DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)


def barrier() -> None:
    """Wait for every process (nothing to do in one process)."""
    if active():
        dist.barrier()
