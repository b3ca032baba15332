"""Synthetic textures and planted defects: procedural textures, defect masks, unchanged photo data."""
import cv2
import numpy as np
import pytest

from dfr import synthetic
from dfr.data.synthetic.defects import (
    DEFECTS,
    PHOTOS,
    PROCEDURAL,
    TEXTURES,
    defect_dataset,
    texture,
)

# defect_dataset(name, n_train=3, n_test=4, size=64, seed=0, disjoint=False) before the procedural textures were added:
# (sum of train crops, sum of test crops, masked pixels), sums in float64.
PHOTO_SUMS = {
    "brick": (5367.882474154234, 7277.280745960772, 426),
    "grass": (5492.772709069774, 7723.348460581154, 426),
    "gravel": (6308.160974172875, 8213.535344464704, 426),
}


def _needs_photos(name):
    if name in PHOTOS:
        pytest.importorskip("skimage")


def test_texture_list():
    assert TEXTURES == ("brick", "grass", "gravel", "weave", "wood", "leather")
    with pytest.raises(ValueError, match="unknown texture"):
        texture("marble")


@pytest.mark.parametrize("name", PROCEDURAL)
def test_procedural_texture_is_deterministic(name):
    first = texture(name)
    assert first.shape == (512, 512) and first.dtype == np.float32
    assert 0.0 <= first.min() and first.max() <= 1.0 and first.std() > 0.08
    reference = first.copy()
    first[:] = 0  # a copy: the cached array is untouched
    np.testing.assert_array_equal(texture(name), reference)
    getattr(synthetic, f"_{name}").cache_clear()  # generated afresh, not only read back from the cache
    np.testing.assert_array_equal(texture(name), reference)


@pytest.mark.parametrize("name", PROCEDURAL)
def test_procedural_texture_is_stationary(name):
    # Measured: quadrant means lie within 0.024 of the whole image's mean (wood; weave and leather 0.015)
    # and quadrant stds within 0.011 of its std; the photos reach 0.013 for both. The bounds leave
    # some margin yet fail for a lighting gradient or a pattern confined to part of the image.
    image = texture(name)
    for quadrant in (image[y:y + 256, x:x + 256] for y in (0, 256) for x in (0, 256)):
        assert abs(quadrant.mean() - image.mean()) < 0.04
        assert abs(quadrant.std() - image.std()) < 0.02


@pytest.mark.parametrize("name", PROCEDURAL)
def test_procedural_texture_has_detail_at_several_scales(name):
    # Std of the bands between Gaussian blurs of sigma 0, 1, 4 and 16 px: measured 0.04 or more for
    # every procedural texture, about as much as the photos (brick's finest band is 0.019).
    image = texture(name)
    levels = [image] + [cv2.GaussianBlur(image, (0, 0), sigma) for sigma in (1, 4, 16)]
    for finer, coarser in zip(levels, levels[1:]):
        assert (finer - coarser).std() > 0.03


@pytest.mark.parametrize("name", TEXTURES)
def test_defect_masks_mark_changed_pixels(name, monkeypatch):
    _needs_photos(name)
    planted = []

    def recording_plant_defect(image, kind, rng, foreign=None):
        changed, mask = plant_defect(image, kind, rng, foreign)
        planted.append((image, changed, mask, kind, foreign))
        return changed, mask

    plant_defect = synthetic.plant_defect
    monkeypatch.setattr(synthetic, "plant_defect", recording_plant_defect)
    data = defect_dataset(name, n_train=2, n_test=7, size=64, seed=1)
    assert len(data.train) == 2 and len(data.test) == len(data.masks) == 7
    assert data.defects == ["good", "good", *DEFECTS]
    assert all(image.shape == (64, 64) and image.dtype == np.float32 for image in data.train + data.test)
    assert not data.masks[0].any() and not data.masks[1].any()
    family = PHOTOS if name in PHOTOS else PROCEDURAL
    other = texture(family[(family.index(name) + 1) % len(family)])
    for (before, after, mask, kind, foreign), test, test_mask in zip(planted, data.test[2:], data.masks[2:]):
        np.testing.assert_array_equal(after, test)
        np.testing.assert_array_equal(mask, test_mask)
        assert mask.sum() > 20, kind
        np.testing.assert_array_equal(after[~mask], before[~mask])
        assert np.mean(after[mask] != before[mask]) > 0.8, kind
        # the foreign patch is a crop of the next texture of the same family
        assert cv2.matchTemplate(other, foreign, cv2.TM_SQDIFF).min() < 1e-3  # squared differences summed


@pytest.mark.parametrize("name", PHOTOS)
def test_photo_defect_data_unchanged(name):
    pytest.importorskip("skimage")
    data = defect_dataset(name, n_train=3, n_test=4, size=64, seed=0, disjoint=False)
    train_sum, test_sum, n_masked = PHOTO_SUMS[name]
    assert np.sum(np.float64(data.train)) == pytest.approx(train_sum, rel=1e-9)
    assert np.sum(np.float64(data.test)) == pytest.approx(test_sum, rel=1e-9)
    assert int(np.sum(data.masks)) == n_masked
    assert data.defects == ["good", "foreign", "dark", "bright"]


@pytest.mark.parametrize("name", ["weave", "brick"])
def test_disjoint_crops_come_from_separate_halves(name):
    _needs_photos(name)
    source, half = texture(name), synthetic.SIDE // 2
    data = defect_dataset(name, n_train=6, n_test=8, size=96, good_fraction=1.0, seed=3)

    def column(crop):  # where the crop sits in the texture (an exact copy: squared differences ~0)
        scores = cv2.matchTemplate(source, crop, cv2.TM_SQDIFF)
        assert scores.min() < 1e-3
        return int(np.unravel_index(np.argmin(scores), scores.shape)[1])

    assert all(column(crop) + 96 <= half for crop in data.train)
    assert all(column(crop) >= half for crop in data.test)
    with pytest.raises(ValueError, match="disjoint crops need size <= 256"):
        defect_dataset(name, size=300)
    assert defect_dataset(name, n_train=1, n_test=1, size=300, disjoint=False).train[0].shape == (300, 300)
