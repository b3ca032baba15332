"""The feature-space peers of DFR: PCA residual and patch memory bank on DFR's regional features."""
import numpy as np
import pytest
import torch

import dfr
from baselines import PatchMemoryBank, PCAResidual
from baselines.memory_bank import greedy_coreset, nearest_map
from tests.conftest import pixel_auc

pytestmark = pytest.mark.filterwarnings("ignore:VGG19 with random weights")

LAYERS = ("relu1_2", "relu2_2", "relu3_4")
RAW = {"smoothing_sigma": 0.0, "image_score": "max"}


def _head(model_class, **kwargs):
    return model_class(weights=None, layers=LAYERS, image_size=64, device="cpu", **kwargs)


@pytest.fixture(scope="module")
def pca(brick):
    return _head(PCAResidual).fit(brick.train)


@pytest.fixture(scope="module")
def bank(brick):
    return _head(PatchMemoryBank).fit(brick.train)


@pytest.mark.parametrize("name", ["pca", "bank"])
def test_heads_find_planted_defects(name, brick, request):
    model = request.getfixturevalue(name)
    prediction = model.predict(brick.test)
    assert pixel_auc(prediction.anomaly_maps, brick.masks) >= 0.85
    assert prediction.anomaly_maps.shape == (10, 128, 128) and prediction.anomaly_maps.dtype == np.float32
    good = [i for i, kind in enumerate(brick.defects) if kind == "good"]
    defective = [i for i, kind in enumerate(brick.defects) if kind not in ("good", "blur")]
    ordered = np.mean([prediction.scores[d] > prediction.scores[g] for d in defective for g in good])
    assert ordered >= 0.85  # image AUROC over the visible defects


def test_pca_residual_is_the_distance_to_the_fitted_subspace(pca):
    # a point of the subspace scores 0; adding a direction orthogonal to it adds its squared length / C
    channels = pca.mean_.shape[0]
    inside = pca.mean_ + pca.components_ @ torch.randn(pca.latent_dim_, generator=torch.Generator().manual_seed(0))
    orthogonal = torch.randn(channels, generator=torch.Generator().manual_seed(1))
    orthogonal -= pca.components_ @ (pca.components_.T @ orthogonal)
    features = torch.stack([inside, inside + orthogonal])[:, :, None, None]
    scores = pca._position_scores(features)[:, 0, 0]
    assert scores[0] == pytest.approx(0.0, abs=1e-6)
    assert scores[1] == pytest.approx(float(orthogonal.pow(2).sum()) / channels, rel=1e-4)
    assert torch.allclose(pca.components_.T @ pca.components_, torch.eye(pca.latent_dim_), atol=1e-5)
    assert sum(pca.explained_variance_ratio_) >= 0.9


def test_nearest_map_matches_brute_force_across_blocks(monkeypatch):
    import baselines.memory_bank as memory_bank

    monkeypatch.setattr(memory_bank, "SCORING_BANK_CHUNK", 5)
    generator = torch.Generator().manual_seed(0)
    features, bank_vectors = torch.randn(2, 6, 3, 5, generator=generator), torch.randn(23, 6, generator=generator)
    queries = features.permute(0, 2, 3, 1).reshape(-1, 6)
    expected = torch.cdist(queries.double(), bank_vectors.double()).min(1).values.reshape(2, 3, 5)
    assert torch.allclose(nearest_map(features, bank_vectors).double(), expected, atol=1e-5)


def test_greedy_coreset_takes_one_point_of_each_far_cluster_first():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    points = (centres[:, None] + torch.randn(4, 25, 2, generator=generator)).reshape(-1, 2)
    chosen = greedy_coreset(points, 4, projection_dim=None)
    assert sorted((chosen // 25).tolist()) == [0, 1, 2, 3]
    # the next pick is the point farthest from the four chosen ones
    five = greedy_coreset(points, 5, projection_dim=None)
    distances = torch.cdist(points, points[five[:4]]).min(1).values
    assert five[4] == torch.argmax(distances) and torch.equal(five[:4], chosen)
    with pytest.raises(ValueError, match="coreset size"):
        greedy_coreset(points, 0)


def test_full_bank_gives_zero_on_its_own_training_images(brick):
    # 64² input → 16x16 positions, all cached ("auto"); a fraction of 1 keeps every vector
    model = _head(PatchMemoryBank, coreset_fraction=1.0, scoring=RAW).fit(brick.train[:4], validation=brick.train[4:6])
    assert len(model.bank_) == 4 * 16 * 16
    assert np.abs(model.anomaly_map(brick.train[:4])).max() < 1e-2 * model.threshold_
    assert model.anomaly_map(brick.test[-1]).max() > model.threshold_


def test_coreset_fraction_sets_the_bank_size(bank, brick):
    # 13 training images after the held-out 3, every one of their 256 positions cached
    assert len(bank.bank_) == round(0.05 * 13 * 256)


def test_bad_head_settings_are_reported(brick):
    with pytest.raises(ValueError, match="coreset_fraction must be a number in"):
        _head(PatchMemoryBank, coreset_fraction=0.0).fit(brick.train[:3])
    with pytest.raises(ValueError, match="explained_variance must be a number in"):
        _head(PCAResidual, explained_variance=1.5).fit(brick.train[:3])
    with pytest.raises(ValueError, match="positions_per_image must be"):
        _head(PCAResidual, positions_per_image="all").fit(brick.train[:3])


def test_model_file_records_the_layers_it_was_fitted_on(brick, tmp_path):
    from dfr.api.persistence import RESERVED_KEYS, read_model_file, write_model_file

    model = _head(PCAResidual).fit(brick.train[:6])
    model.save(tmp_path / "model.dfr")
    record = read_model_file(tmp_path / "model.dfr")
    assert record["state"]["layers"] == list(model.extractor_.layers)
    # a file whose constructor arguments say "default layers": the recorded ones are used
    record["params"]["layers"] = None
    write_model_file(tmp_path / "default.dfr", {k: v for k, v in record.items() if k not in RESERVED_KEYS})
    loaded = dfr.load(tmp_path / "default.dfr", device="cpu")
    assert loaded.extractor_.layers == list(model.extractor_.layers)
    assert np.array_equal(loaded.anomaly_map(brick.test[:2]), model.anomaly_map(brick.test[:2]))
