"""Exact order statistics from a ValueStore (values on disk), against numpy."""
import numpy as np
import pytest

import dfr.scoring.order_statistics as order_statistics
from dfr.scoring import fit_threshold, score_statistics
from dfr.scoring.order_statistics import ValueStore


@pytest.fixture
def tiny_limits(monkeypatch):
    """Chunks of 7 values, 4 bins, at most 3 candidates loaded: every refinement step runs."""
    monkeypatch.setattr(order_statistics, "CHUNK", 7)
    monkeypatch.setattr(order_statistics, "BINS", 4)
    monkeypatch.setattr(order_statistics, "LOAD_LIMIT", 3)


@pytest.mark.parametrize("kind", ["normal", "ties", "wide"])
def test_every_rank_and_quantile_equals_numpy(tiny_limits, kind):
    rng = np.random.default_rng(1)
    values = {"normal": rng.standard_normal(61), "ties": rng.choice([0.0, 1.0, 2.5], 61),
              "wide": rng.standard_normal(61) * 10.0 ** rng.integers(-20, 20, 61)}[kind].astype(np.float32)
    with ValueStore() as store:
        for part in np.array_split(values, 4):
            store.append(part)
        assert store.total_count() == 61
        assert [store.order_statistic(k) for k in range(61)] == np.sort(values).tolist()
        for q in (0.0, 0.3, 0.5, 0.99, 1.0):
            assert store.quantile(q) == pytest.approx(np.quantile(values.astype(np.float64), q), rel=1e-12)
        assert store.maximum() == values.max()
        with pytest.raises(ValueError, match="outside the 61 stored values"):
            store.order_statistic(61)


def test_threshold_and_statistics_from_a_store_equal_those_from_arrays(tiny_limits):
    maps = [np.random.default_rng(seed).random((5, 6), dtype=np.float32) for seed in range(4)]
    with ValueStore() as store:
        for anomaly_map in maps:
            store.append(anomaly_map)
        assert fit_threshold(store, 0.1) == fit_threshold(maps, 0.1)
        pixels = np.concatenate([m.ravel() for m in maps]).astype(np.float64)
        assert fit_threshold(store, 0.1) == np.sort(pixels)[120 - 12 - 1]  # at most 12 of 120 pixels above
        stats = score_statistics(store, np.array([1.0, 2.0, 3.0, 4.0]))
        assert stats["pixel_median"] == pytest.approx(np.median(pixels), rel=1e-12)
        assert stats["pixel_q99"] == pytest.approx(np.quantile(pixels, 0.99), rel=1e-12)
        assert stats["pixel_max"] == pixels.max() and stats["image_score_mean"] == 2.5
        with pytest.raises(ValueError, match="needs scores="):
            score_statistics(store)


def test_non_finite_values_are_refused():
    with ValueStore() as store, pytest.raises(ValueError, match="NaN or infinity"):
        store.append(np.array([1.0, np.nan]))
