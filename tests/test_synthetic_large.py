"""Large non-square procedural textures with small planted defects, written in the MVTec AD layout."""
import hashlib

import cv2
import numpy as np
import pytest

from dfr.data.readers import load_test, load_train, read_mvtec
from dfr.data.synthetic import (
    large_texture_dataset,
    procedural_texture,
    texture,
    write_large_textures,
)
from dfr.data.synthetic.defects import DEFECTS, PROCEDURAL

SIZE = (96, 160)  # (height, width): small, so the tests stay fast
AREA = (0.002, 0.02)  # of 15360 px: 31-307 px
LOW, HIGH = 31, 307
KWARGS = dict(n_train=3, n_test=7, size=SIZE, defect_area=AREA, seed=0)  # 2 good test images, then one per defect

# sha256 of the float32 bytes of texture(name), measured before procedural_texture existed: figures
# of other benchmarks depend on these exact textures.
TEXTURE_SHA256 = {
    "weave": "6036c0847a82323fccd6dc6c9e05a8fce2a6728c483b1718f36cc08846360687",
    "wood": "9a8f9939e22ae30a29463082bea8cb76aa55ee22e92406f503de217cb33af7b7",
    "leather": "954d7880d3be6a76ee317599a707323363603f3e8df4ff2bee8d9dcfff365653",
}


@pytest.mark.parametrize("name", PROCEDURAL)
def test_the_512_textures_are_bit_identical(name):
    assert hashlib.sha256(texture(name).tobytes()).hexdigest() == TEXTURE_SHA256[name]
    np.testing.assert_array_equal(procedural_texture(name), texture(name))
    np.testing.assert_array_equal(procedural_texture(name, (512, 512), {"weave": 1, "wood": 2, "leather": 3}[name]),
                                  texture(name))


@pytest.mark.parametrize("name", PROCEDURAL)
def test_procedural_texture_at_any_shape_and_seed(name):
    image = procedural_texture(name, (80, 144), seed=7)
    assert image.shape == (80, 144) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.1
    np.testing.assert_array_equal(procedural_texture(name, (80, 144), seed=7), image)
    assert np.abs(procedural_texture(name, (80, 144), seed=8) - image).mean() > 0.05
    with pytest.raises(ValueError, match="unknown procedural texture"):
        procedural_texture("brick", (80, 144))
    with pytest.raises(ValueError, match="shape must be"):
        procedural_texture(name, (8, 144))


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("large")
    return root, write_large_textures(root, **KWARGS)


def test_written_folder_reads_back_as_returned(written):
    root, data = written
    assert list(data) == list(PROCEDURAL)
    categories = read_mvtec(root)
    assert [category.name for category in categories] == sorted(PROCEDURAL)  # natural order
    for category in categories:
        expected = data[category.name]
        assert len(expected.train) == 3 and len(expected.test) == 7
        assert expected.defects == ["good", "good", *sorted(DEFECTS)] == category.defects
        assert all(image.shape == SIZE and image.dtype == np.float32 for image in expected.train + expected.test)
        train = load_train(category)
        test, masks = load_test(category)
        for stored, image in zip(train + test, expected.train + expected.test):
            assert stored.shape == (*SIZE, 1)
            np.testing.assert_array_equal(stored[:, :, 0], image)
        for stored, mask in zip(masks, expected.masks):
            np.testing.assert_array_equal(stored, mask)
    with pytest.raises(FileExistsError):
        write_large_textures(root, ("wood",), **KWARGS)
    # one category at a time gives the same data: its seeds do not depend on the other categories
    again = write_large_textures(root, ("wood",), **KWARGS, overwrite=True)["wood"]
    for first, second in zip(again.train + again.test, data["wood"].train + data["wood"].test):
        np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", PROCEDURAL)
def test_each_defect_changes_exactly_its_small_mask(name):
    data = large_texture_dataset(name, **KWARGS)
    clean = large_texture_dataset(name, **{**KWARGS, "good_fraction": 1.0})  # the same textures, no defects
    assert data.defects == ["good", "good", *DEFECTS] and clean.defects == ["good"] * 7
    for image, mask, kind, original in zip(data.test, data.masks, data.defects, clean.test):
        if kind == "good":
            assert not mask.any()
            np.testing.assert_array_equal(image, original)
            continue
        assert LOW <= mask.sum() <= HIGH, kind
        np.testing.assert_array_equal(image[~mask], original[~mask])
        assert (image[mask] != original[mask]).all(), kind  # the mask is exactly the changed pixels
        assert cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] == 2, kind  # one piece
        change = image[mask] - original[mask]
        if kind == "dark":
            assert (change < 0).mean() > 0.95 and change.mean() < -0.2
        elif kind == "bright":
            assert (change > 0).mean() > 0.95 and change.mean() > 0.15
        elif kind == "scratch":
            assert (image[mask] >= 0.9).mean() > 0.95
            thickness = min(cv2.minAreaRect(np.argwhere(mask).astype(np.float32))[1])
            assert thickness <= 4, thickness
        elif kind == "blur":
            assert image[mask].std() < 0.6 * original[mask].std()
        else:
            assert np.abs(change).mean() > 0.08


def test_defect_area_follows_the_image_size():
    data = large_texture_dataset("leather", n_train=1, n_test=5, good_fraction=0.0)  # 640x1024, 0.02 %-0.2 %
    assert all(image.shape == (640, 1024) for image in data.train + data.test)
    areas = [int(mask.sum()) for mask in data.masks]
    assert all(132 <= area <= 1310 for area in areas), areas


def test_defects_reach_the_borders():
    data = large_texture_dataset("leather", n_train=1, n_test=20, size=(64, 96), good_fraction=0.0,
                                 defect_area=(0.005, 0.02), seed=1)
    touching = [mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any() for mask in data.masks]
    assert 2 <= sum(touching) < 20


def test_every_image_is_a_fresh_texture_with_the_same_statistics():
    data = large_texture_dataset("weave", n_train=4, n_test=2, size=SIZE, good_fraction=1.0, defect_area=AREA)
    images = data.train + data.test
    for index, first in enumerate(images):
        assert abs(first.mean() - 0.5) < 0.02 and abs(first.std() - 0.16) < 0.02
        for second in images[index + 1:]:
            assert np.abs(first - second).mean() > 0.08
    for test in data.test:  # no test patch is copied from a training image
        patch = test[20:52, 40:72]
        assert min(cv2.matchTemplate(train, patch, cv2.TM_SQDIFF).min() for train in data.train) > 1.0


def test_a_fixed_seed_gives_the_same_data():
    first = large_texture_dataset("wood", **KWARGS)
    second = large_texture_dataset("wood", **KWARGS)
    other = large_texture_dataset("wood", **{**KWARGS, "seed": 1})
    for a, b, c in zip(first.train + first.test + first.masks, second.train + second.test + second.masks,
                       other.train + other.test + other.masks):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.train[0], other.train[0])
    assert first.defects == second.defects


@pytest.mark.parametrize("kwargs, message", [
    ({"categories": ("marble",)}, "unknown category 'marble'"),
    ({"categories": ("wood", "wood")}, "repeat"),
    ({"size": (63, 160)}, "too small"),
    ({"size": (96,)}, "size must be"),
    ({"defect_area": (0.0, 0.01)}, "defect_area must satisfy"),
    ({"defect_area": (0.01, 0.06)}, "defect_area must satisfy"),
    ({"defect_area": (0.02, 0.01)}, "defect_area must satisfy"),
    ({"defect_area": (0.0002, 0.002)}, "defects need at least 16 px"),
    ({"good_fraction": 1.5}, "good_fraction"),
    ({"n_train": 0}, "n_train"),
    ({"seed": -1}, "seed"),
])
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_large_textures(tmp_path, **{**KWARGS, **kwargs})
    assert not any(tmp_path.iterdir())
