import numpy as np
import pytest

from dfr.data.files import write_image
from dfr.data.readers import load_test, load_train, read_mvtec, read_mvtec_category
from dfr.data.synthetic import write_mvtec_like


def _small(root, categories=("brick",), **kwargs):
    return write_mvtec_like(root, categories, n_train=3, n_test=6, size=64, **kwargs)


def test_generator_output_is_read_back_exactly(tmp_path):
    written = _small(tmp_path, ("brick", "grass"))
    categories = read_mvtec(tmp_path)
    assert [category.name for category in categories] == ["brick", "grass"]
    for category in categories:
        truth = written[category.name]
        assert category.defects == truth.defects
        assert category.defects[0] == "good" and len(set(truth.defects)) > 2
        np.testing.assert_array_equal(category.labels, [defect != "good" for defect in truth.defects])
        train = load_train(category)
        images, masks = load_test(category)
        assert all(image.shape == (64, 64, 1) for image in train + images)
        for image, expected in zip(train, truth.train, strict=True):
            np.testing.assert_array_equal(image[:, :, 0], expected)
        for image, mask, expected, expected_mask in zip(images, masks, truth.test, truth.masks, strict=True):
            np.testing.assert_array_equal(image[:, :, 0], expected)
            np.testing.assert_array_equal(mask, expected_mask)
        assert all(mask is None for mask, defect in zip(category.masks, category.defects) if defect == "good")
        assert all(masks[i].any() for i in np.flatnonzero(category.labels))


def test_root_may_be_one_category_and_categories_can_be_picked(tmp_path):
    _small(tmp_path, ("brick", "gravel"))
    assert read_mvtec(tmp_path / "gravel")[0].name == "gravel"
    assert [c.name for c in read_mvtec(tmp_path, categories=["gravel"])] == ["gravel"]
    with pytest.raises(ValueError, match="no category carpet; found brick, gravel"):
        read_mvtec(tmp_path, categories=["carpet"])
    with pytest.raises(ValueError, match="no MVTec AD category found"):
        read_mvtec(tmp_path / "brick" / "train")


def test_channels_follow_the_files_not_the_category_name(tmp_path):
    rng = np.random.default_rng(0)
    for name, shape in (("grid", (16, 16, 3)), ("carpet", (16, 16))):
        for part in ("train/good/000.png", "test/good/000.png", "test/cut/000.png"):
            write_image(tmp_path / name / part, rng.integers(0, 256, shape, dtype=np.uint8))
        write_image(tmp_path / name / "ground_truth/cut/000_mask.png", np.full((16, 16), 255, np.uint8))
    grid, carpet = read_mvtec(tmp_path, categories=["grid", "carpet"])
    assert load_train(grid)[0].shape == (16, 16, 3)
    assert load_train(carpet)[0].shape == (16, 16, 1)
    assert load_test(grid)[1][1].all()


def test_missing_mask_is_an_error_naming_it(tmp_path):
    _small(tmp_path)
    mask = next((tmp_path / "brick" / "ground_truth").glob("*/000_mask.png"))
    mask.unlink()
    with pytest.raises(ValueError, match=rf"{mask.parent.name}/000_mask.png: missing mask for test image .*000.png"):
        read_mvtec_category(tmp_path / "brick")


def test_extra_mask_is_an_error_naming_it(tmp_path):
    _small(tmp_path)
    folder = next((tmp_path / "brick" / "ground_truth").iterdir())
    extra = folder / "007_mask.png"
    write_image(extra, np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match=rf"{folder.name}/007_mask.png: mask without a test image"):
        read_mvtec_category(tmp_path / "brick")


def test_masks_for_an_unknown_defect_are_an_error(tmp_path):
    _small(tmp_path)
    write_image(tmp_path / "brick/ground_truth/crack/000_mask.png", np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="ground_truth/crack: masks for a defect with no folder test/crack"):
        read_mvtec_category(tmp_path / "brick")


def test_mask_of_the_wrong_size_is_reported(tmp_path):
    _small(tmp_path)
    mask = next((tmp_path / "brick" / "ground_truth").glob("*/000_mask.png"))
    write_image(mask, np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"000_mask.png: mask has shape \(32, 32\) but its image has shape \(64, 64\)"):
        load_test(read_mvtec_category(tmp_path / "brick"))


def test_writing_refuses_a_non_empty_folder_unless_asked(tmp_path):
    first = _small(tmp_path, seed=0)
    with pytest.raises(FileExistsError, match="brick: folder is not empty; pass overwrite=True"):
        _small(tmp_path, seed=1)
    second = _small(tmp_path, seed=1, overwrite=True)
    assert not np.array_equal(first["brick"].train[0], second["brick"].train[0])
    np.testing.assert_array_equal(load_train(read_mvtec(tmp_path)[0])[0][:, :, 0], second["brick"].train[0])
