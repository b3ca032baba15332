"""Shared fixtures: small, seeded, offline."""
import os
import warnings

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def brick():
    """Planted-defect crops of scikit-image's brick photo, 128x128."""
    from dfr.synthetic import defect_dataset

    return defect_dataset("brick", n_train=16, n_test=10, size=128, seed=0)


@pytest.fixture(scope="session")
def fitted_dfr(brick):
    """DFR with seeded random VGG19 weights fitted on the brick crops (CPU preset)."""
    from dfr import DFR

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DFR("cpu", weights=None, image_size=128, seed=0, device="cpu").fit(brick.train)


def pixel_auc(maps, masks):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(np.concatenate([m.ravel() for m in masks]), np.concatenate([m.ravel() for m in maps]))
