"""Exact order statistics of more values than fit in memory.

:class:`ValueStore` appends float32 values to a temporary file and finds the k-th smallest
exactly by histogram refinement: each round counts the remaining candidates in
``BINS`` equal bins between their minimum and maximum, keeps the bin that holds rank k, and
stops when at most ``LOAD_LIMIT`` candidates remain (they are read and partitioned) or all
candidates are equal. Memory stays at about ``CHUNK`` values whatever the number stored.

Across processes (:mod:`dfr.distributed`), every rank keeps its own store and the counts,
extremes and last candidates are combined over all ranks, so every rank gets the order
statistics of all ranks' values together.
"""
from __future__ import annotations

import os
import tempfile
from typing import Iterable

import numpy as np

from dfr import distributed

BINS = 4096
LOAD_LIMIT = 1 << 20
CHUNK = 1 << 22


class ValueStore:
    """float32 values spilled to a temporary file (deleted on :meth:`close` or collection)."""

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self._file = tempfile.TemporaryFile(dir=directory)
        self.count = 0
        self.low, self.high = np.inf, -np.inf  # of this rank's values

    def append(self, values: np.ndarray) -> None:
        """Add ``values`` (any shape; flattened, stored as float32)."""
        values = np.ascontiguousarray(np.ravel(values), dtype=np.float32)
        if not np.isfinite(values).all():
            raise ValueError("anomaly maps contain NaN or infinity")
        self._file.seek(0, os.SEEK_END)
        self._file.write(values.tobytes())
        self.count += values.size
        if values.size:
            self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))

    def chunks(self) -> Iterable[np.ndarray]:
        """The stored values, ``CHUNK`` at a time, in the order appended."""
        self._file.seek(0)
        while True:
            data = self._file.read(CHUNK * 4)
            if not data:
                return
            yield np.frombuffer(data, dtype=np.float32)

    def total_count(self) -> int:
        """Values stored on all ranks."""
        return int(distributed.all_reduce(np.array([self.count], np.float64), "sum")[0])

    def order_statistic(self, k: int) -> float:
        """The ``k``-th smallest value (0-based) over all ranks' stores."""
        total = self.total_count()
        if not 0 <= k < total:
            raise ValueError(f"rank {k} is outside the {total} stored values")
        ranges: list[tuple[float, float, int]] = []  # (low, bin width, bin) of each refinement
        below = 0  # candidates' rank offset: values below the current candidates
        while True:
            count, low, high = self._candidate_summary(ranges)
            if low == high:
                return float(low)
            if count <= LOAD_LIMIT:
                values = np.sort(np.concatenate(distributed.all_gather(self._candidates(ranges))))
                return float(values[k - below])
            width = (high - low) / BINS
            counts = self._candidate_histogram(ranges, low, width)
            cumulative = np.cumsum(counts)
            chosen = int(np.searchsorted(cumulative, k - below, side="right"))
            below += int(cumulative[chosen - 1]) if chosen else 0
            ranges.append((low, width, chosen))

    def maximum(self) -> float:
        """The largest value over all ranks."""
        return float(distributed.all_reduce(np.array([self.high]), "max")[0])

    def quantile(self, q: float) -> float:
        """The ``q`` quantile with linear interpolation (``numpy.quantile``'s default) over all ranks."""
        position = (self.total_count() - 1) * q
        lower = int(np.floor(position))
        low = self.order_statistic(lower)
        if position == lower:
            return low
        return low + (position - lower) * (self.order_statistic(lower + 1) - low)

    def close(self) -> None:
        """Remove the temporary file."""
        self._file.close()

    def __enter__(self) -> "ValueStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- helpers

    def _select(self, chunk: np.ndarray, ranges: list[tuple[float, float, int]]) -> np.ndarray:
        """The values of ``chunk`` that fell in the chosen bin of every refinement so far."""
        for low, width, chosen in ranges:
            chunk = chunk[_bins(chunk, low, width) == chosen]
        return chunk

    def _candidates(self, ranges: list[tuple[float, float, int]]) -> np.ndarray:
        return np.concatenate([self._select(chunk, ranges) for chunk in self.chunks()] + [np.empty(0, np.float32)])

    def _candidate_summary(self, ranges: list[tuple[float, float, int]]) -> tuple[int, float, float]:
        """Count, minimum and maximum of the candidates over all ranks."""
        count, low, high = (self.count, self.low, self.high) if not ranges else (0, np.inf, -np.inf)
        for chunk in self.chunks() if ranges else ():
            chosen = self._select(chunk, ranges)
            if chosen.size:
                count, low, high = count + chosen.size, min(low, float(chosen.min())), max(high, float(chosen.max()))
        count = int(distributed.all_reduce(np.array([count], np.float64), "sum")[0])
        low = float(distributed.all_reduce(np.array([low]), "min")[0])
        high = float(distributed.all_reduce(np.array([high]), "max")[0])
        return count, low, high

    def _candidate_histogram(self, ranges: list[tuple[float, float, int]], low: float, width: float) -> np.ndarray:
        counts = np.zeros(BINS, np.float64)
        for chunk in self.chunks():
            counts += np.bincount(_bins(self._select(chunk, ranges), low, width), minlength=BINS)
        return distributed.all_reduce(counts, "sum")


def _bins(values: np.ndarray, low: float, width: float) -> np.ndarray:
    """Bin of each value among ``BINS`` bins of ``width`` from ``low`` (the maximum in the last)."""
    return np.clip(((values.astype(np.float64) - low) / width).astype(np.int64), 0, BINS - 1)
