"""Shared fixtures: small, seeded, offline."""
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: VGG19 layers of the small feature models in the tests (3 of the paper's 12, 448 channels).
LAYERS = ("relu1_2", "relu2_2", "relu3_4")

#: Small settings of every registered model, for the common tests (tests/test_common.py):
#: a model added to the registry adds its line here.
TINY = {
    "dfr": {"weights": None, "layers": LAYERS, "image_size": 64, "epochs": 4},
    "pca-residual": {"weights": None, "layers": LAYERS, "image_size": 64},
    "memory-bank": {"weights": None, "layers": LAYERS, "image_size": 64},
    "cae": {"preset": "cpu", "image_size": 32, "channels": 8, "bottleneck": 16, "epochs": 8, "batch_size": 8},
    "poolae": {"preset": "cpu", "width": None, "channels": (4, 8, 8, 8), "crop_size": 32, "epochs": 4},
    "stae": {"preset": "cpu", "image_size": 83, "channels": (4, 4, 4), "window": 4, "epochs": 2},
    "convlstm": {"preset": "cpu", "image_size": 27, "window": 4, "epochs": 2},
}


@pytest.fixture(scope="session")
def brick():
    """Planted-defect crops of scikit-image's brick photo, 128x128."""
    from dfr.data.synthetic import defect_dataset

    return defect_dataset("brick", n_train=16, n_test=10, size=128, seed=0)


@pytest.fixture(scope="session")
def fitted_dfr(brick):
    """DFR with seeded random VGG19 weights (three of the paper's layers) fitted on the brick crops (CPU preset)."""
    from dfr import DFR

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DFR("cpu", weights=None, layers=LAYERS, image_size=128, epochs=3, seed=0, device="cpu").fit(brick.train)


def pixel_auc(maps, masks):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps]))
