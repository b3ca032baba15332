import json

import numpy as np
import pytest

from dfr.data.files import write_image
from dfr.data.io import read_image
from dfr.data.readers import (
    boxes_to_mask,
    detect_formats,
    load_region_mask,
    read_pool,
    training_split,
)
from dfr.data.synthetic import write_pool_like


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return write_pool_like(tmp_path_factory.mktemp("pool"), n_images=6, seed=0)


@pytest.mark.parametrize("form", ["yolo", "voc", "coco"])
def test_each_format_is_read_back_exactly(pool, form):
    dataset = read_pool(pool.root, format=form)
    assert dataset.format == form
    assert [path.name for path in dataset.images] == [f"pool_{i:03d}.png" for i in range(6)]
    for index, (boxes, expected) in enumerate(zip(dataset.boxes, pool.boxes, strict=True)):
        assert boxes.shape == expected.shape
        np.testing.assert_allclose(boxes, expected, atol=1e-5)
        image = read_image(dataset.images[index])
        np.testing.assert_array_equal(np.round(image * 255), pool.images[index])
        np.testing.assert_array_equal(load_region_mask(dataset, index, image.shape[:2]), pool.region_masks[index])
    assert 0 < len(dataset.object_free) < 6


def test_generated_scenes_are_plausible(pool):
    for image, boxes, region in zip(pool.images, pool.boxes, pool.region_masks):
        assert image.shape == (180, 320, 3) and 0.5 < region.mean() < 0.9
        for x0, y0, x1, y1 in boxes:
            assert region[y0:y1, x0:x1].any() and 5 <= x1 - x0 <= 60 and 3 <= y1 - y0 <= 30


def test_format_is_detected_when_only_one_is_on_disk(tmp_path):
    truth = write_pool_like(tmp_path, n_images=3, formats=("voc",), seed=1)
    assert list(detect_formats(tmp_path)) == ["voc"]
    dataset = read_pool(tmp_path)
    assert dataset.format == "voc"
    for boxes, expected in zip(dataset.boxes, truth.boxes):
        np.testing.assert_array_equal(boxes, expected)


def test_several_formats_need_a_choice(pool):
    with pytest.raises(ValueError, match=r"cannot tell the annotation format \(found: yolo, voc, coco\); pass format="):
        read_pool(pool.root)


def test_yolo_next_to_images_missing_file_means_no_swimmers(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, image)
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n\n")
    (tmp_path / "classes.txt").write_text("swimmer\n")
    dataset = read_pool(tmp_path)
    assert dataset.format == "yolo" and dataset.region_masks is None
    np.testing.assert_allclose(dataset.boxes[0], [[10, 5, 30, 15]])
    assert dataset.boxes[1].shape == (0, 4) and dataset.object_free == [1]
    assert load_region_mask(dataset, 0, (20, 40)).all()


def test_voc_pixels_are_one_based_inclusive(tmp_path):
    write_image(tmp_path / "images" / "a.jpg", np.zeros((20, 40, 3), np.uint8))
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "a.xml").write_text(
        "<annotation><size><width>40</width><height>20</height></size>"
        "<object><name>swimmer</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax></bndbox>"
        "</object></annotation>"
    )
    np.testing.assert_array_equal(read_pool(tmp_path).boxes[0], [[0, 1, 10, 20]])


def test_annotation_errors_name_the_file(tmp_path):
    write_image(tmp_path / "images" / "a.png", np.zeros((20, 40, 3), np.uint8))
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text("0 0.5 0.5 0.5\n")
    with pytest.raises(ValueError, match=r"labels/a.txt, line 1: expected 'class cx cy w h'"):
        read_pool(tmp_path)
    (labels / "a.txt").write_text("0 0.9 0.5 0.5 0.5\n")
    with pytest.raises(ValueError, match=r"labels/a.txt: box .* lies outside the 40x20 image"):
        read_pool(tmp_path)
    (labels / "a.txt").write_text("")
    (labels / "b.txt").write_text("")
    with pytest.raises(ValueError, match=r"labels/b.txt: annotation without an image"):
        read_pool(tmp_path)


def test_coco_must_list_every_image(tmp_path):
    truth = write_pool_like(tmp_path, n_images=3, formats=("coco",), seed=2)
    coco = json.loads((tmp_path / "annotations.json").read_text())
    coco["images"] = coco["images"][:2]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] <= 2]
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match=r"annotations.json: pool_002.png is not listed"):
        read_pool(tmp_path)
    assert len(truth.images) == 3


def test_every_image_needs_a_pool_mask_when_masks_exist(tmp_path):
    write_pool_like(tmp_path, n_images=2, formats=("yolo",), seed=3)
    (tmp_path / "masks" / "pool_001.png").unlink()
    with pytest.raises(ValueError, match=r"masks: no pool mask for pool_001.png"):
        read_pool(tmp_path)


def test_object_free_training_split(pool):
    dataset = read_pool(pool.root, format="coco")
    split = training_split(dataset)
    free = [i for i, boxes in enumerate(pool.boxes) if len(boxes) == 0]
    assert split.method == "object_free" and split.train_indices == free
    assert split.test_indices == [i for i in range(6) if i not in free]
    for image, index in zip(split.train, split.train_indices):
        np.testing.assert_array_equal(np.round(image * 255), pool.images[index])


def test_inpainted_training_split(pool):
    baselines = pytest.importorskip("baselines")
    if not hasattr(baselines, "inpaint_boxes"):
        pytest.skip("baselines.inpaint_boxes is not available yet")
    dataset = read_pool(pool.root, format="coco")
    split = training_split(dataset, "inpaint", test_fraction=0.5, seed=0)
    with_swimmers = [i for i, boxes in enumerate(pool.boxes) if len(boxes)]
    assert set(split.test_indices) <= set(with_swimmers)
    assert sorted(split.train_indices + split.test_indices) == list(range(6))
    for image, index in zip(split.train, split.train_indices):
        assert image.shape == (180, 320, 3) and image.dtype == np.float32
        outside = ~boxes_to_mask(pool.boxes[index] + np.array([-8, -8, 8, 8]), (180, 320))
        np.testing.assert_allclose(image[outside], pool.images[index][outside] / 255.0, atol=1.5 / 255)


def test_boxes_to_mask_accepts_scored_boxes():
    mask = boxes_to_mask(np.array([[1.5, 0, 3, 2, 0.9]]), (4, 5))
    assert mask.sum() == 4 and mask[0, 1] and mask[1, 2] and not mask[2].any()
    assert not boxes_to_mask(np.zeros((0, 4)), (4, 5)).any()


def test_inpaint_split_hands_each_image_and_its_boxes_to_inpainting(pool, monkeypatch):
    from dfr.data.readers import pool as pool_reader

    calls = []

    def fake_inpaint_boxes(image, boxes):
        calls.append((image.dtype, image.shape, np.asarray(boxes).shape))
        return np.full(image.shape, 128, np.uint8)

    monkeypatch.setattr(pool_reader, "inpaint_boxes", fake_inpaint_boxes)
    dataset = read_pool(pool.root, format="voc")
    split = training_split(dataset, "inpaint", test_fraction=0.5, seed=0)
    with_swimmers = [i for i, boxes in enumerate(pool.boxes) if len(boxes)]
    inpainted = [i for i in split.train_indices if i in with_swimmers]
    assert len(split.test_indices) == round(0.5 * len(with_swimmers)) and len(inpainted) == len(calls) > 0
    assert calls[0][:2] == (np.float32, (180, 320, 3)) and calls[0][2][1] == 4
    for image, index in zip(split.train, split.train_indices):
        expected = np.full((180, 320, 3), 128 / 255, np.float32) if index in inpainted else pool.images[index] / 255
        np.testing.assert_allclose(image, expected, atol=1e-6)
    assert split.method == "inpaint"
