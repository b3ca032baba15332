"""write_pool_cameras: pool footage of several simulated cameras, the test cameras unseen in training."""
import hashlib
import itertools
import json

import numpy as np
import pytest

from dfr.data.io import read_image
from dfr.data.readers import detect_formats, load_region_mask, read_pool, split_indices
from dfr.data.readers.pool import FORMATS
from dfr.data.synthetic import (
    SyntheticPool,
    SyntheticPoolCameras,
    write_pool_cameras,
    write_pool_like,
)
from dfr.data.synthetic import pool as pool_module
from dfr.evaluation.tasks import pool_task

SMALL = (180, 320)


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    return write_pool_cameras(tmp_path_factory.mktemp("cameras"), cameras=4, test_cameras=2, images_per_camera=3,
                              size=SMALL, formats=FORMATS, seed=1)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_layout_and_names_follow_camera_order(footage):
    assert isinstance(footage, SyntheticPoolCameras) and isinstance(footage, SyntheticPool)
    assert footage.names == [f"cam{c}_{i:03d}.png" for c in range(4) for i in range(3)]
    assert footage.image_cameras == [c for c in range(4) for _ in range(3)] and footage.test_cameras == [2, 3]
    listing = json.loads((footage.root / "meta" / "cameras.json").read_text())
    assert [(camera["index"], camera["test"], camera["images"]) for camera in listing["cameras"]] == [
        (c, c >= 2, [f"cam{c}_{i:03d}" for i in range(3)]) for c in range(4)]
    assert all(4 <= camera["lanes"] <= 8 for camera in listing["cameras"])
    for image, region in zip(footage.images, footage.region_masks):
        assert image.shape == (*SMALL, 3) and image.dtype == np.uint8 and region.shape == SMALL
        assert 0.2 < region.mean() < 0.8


@pytest.mark.parametrize("form", FORMATS)
def test_reader_reads_it_back(footage, form):
    dataset = read_pool(footage.root, format=form)
    assert [path.name for path in dataset.images] == footage.names
    assert dataset.region_masks is not None
    for index, (boxes, expected) in enumerate(zip(dataset.boxes, footage.boxes, strict=True)):
        assert boxes.shape == expected.shape
        np.testing.assert_allclose(boxes, expected, atol=1e-5)
        image = read_image(dataset.images[index])
        np.testing.assert_array_equal(np.round(image * 255), footage.images[index])
        np.testing.assert_array_equal(load_region_mask(dataset, index, SMALL), footage.region_masks[index])


def test_object_free_split_is_the_camera_split(footage):
    dataset = read_pool(footage.root, format="coco")
    split = split_indices(dataset, "object_free")
    assert split.train_indices == footage.train_indices == list(range(6))
    assert split.test_indices == footage.test_indices == list(range(6, 12))
    assert all(1 <= len(footage.boxes[i]) <= 4 for i in footage.test_indices)
    assert all(len(footage.boxes[i]) == 0 for i in footage.train_indices)


def test_cameras_json_is_not_taken_for_coco(tmp_path):
    truth = write_pool_cameras(tmp_path / "coco", cameras=2, test_cameras=1, images_per_camera=2, size=SMALL, seed=2)
    assert list(detect_formats(truth.root)) == ["coco"]
    dataset = read_pool(truth.root)  # one *.json found: annotations.json, not meta/cameras.json
    for boxes, expected in zip(dataset.boxes, truth.boxes, strict=True):
        np.testing.assert_array_equal(boxes, expected)
    task = pool_task(truth.root)
    assert task.test_names == ["cam1_000", "cam1_001"] and task.image_labels.all()
    yolo = write_pool_cameras(tmp_path / "yolo", cameras=2, test_cameras=1, images_per_camera=1, size=SMALL,
                              formats=("yolo",), seed=2)
    assert list(detect_formats(yolo.root)) == ["yolo"] and read_pool(yolo.root).format == "yolo"


def test_swimmers_lie_inside_the_image_and_their_pixels_in_the_pool(tmp_path, monkeypatch):
    painted = []
    original = pool_module._camera_swimmer

    def recording(image, pool, *args):
        before = image.copy()
        box = original(image, pool, *args)
        painted.append(((image != before).any(axis=2), pool.copy(), box))
        return box

    monkeypatch.setattr(pool_module, "_camera_swimmer", recording)
    truth = write_pool_cameras(tmp_path, cameras=3, test_cameras=2, images_per_camera=3, size=SMALL, max_swimmers=4,
                               seed=4)
    assert len(painted) == sum(len(boxes) for boxes in truth.boxes) > 6
    height, width = SMALL
    for changed, pool, (x0, y0, x1, y1) in painted:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert changed.any() and not (changed & ~pool).any()
        inside = np.zeros_like(changed)
        inside[y0:y1, x0:x1] = True
        assert not (changed & ~inside).any()  # the box holds every painted pixel
        ys, xs = np.nonzero(changed)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)


@pytest.mark.parametrize("size", [(900, 1600), (360, 640)])
def test_swimmer_length_scales_with_the_width(tmp_path, size):
    truth = write_pool_cameras(tmp_path, cameras=2, test_cameras=1, images_per_camera=3, size=size, max_swimmers=8,
                               seed=5)
    boxes = np.concatenate([truth.boxes[i] for i in truth.test_indices])
    assert len(boxes) >= 3
    longer = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    scale = size[1] / 1600
    assert (longer >= 20 * scale - 1).all() and (longer <= 60 * scale + 1).all(), longer
    for index in truth.test_indices:
        region = truth.region_masks[index]
        for x0, y0, x1, y1 in truth.boxes[index]:
            assert 0 <= x0 < x1 <= size[1] and 0 <= y0 < y1 <= size[0] and region[y0:y1, x0:x1].any()


def test_cameras_differ_while_frames_of_one_camera_barely_do(footage):
    first = {camera: footage.image_cameras.index(camera) for camera in range(4)}
    for camera, index in first.items():
        others = [i for i, c in enumerate(footage.image_cameras) if c == camera and i != index]
        assert all(_iou(footage.region_masks[index], footage.region_masks[i]) > 0.9 for i in others)
    colour = {camera: footage.images[i][footage.region_masks[i]].mean(axis=0) for camera, i in first.items()}
    for a, b in itertools.combinations(range(4), 2):
        mask_iou = _iou(footage.region_masks[first[a]], footage.region_masks[first[b]])
        assert mask_iou < 0.8 or np.abs(colour[a] - colour[b]).max() > 15, (a, b)


def test_same_seed_same_footage(tmp_path):
    kwargs = {"cameras": 2, "test_cameras": 1, "images_per_camera": 2, "size": SMALL, "seed": 7}
    one, two = write_pool_cameras(tmp_path / "a", **kwargs), write_pool_cameras(tmp_path / "b", **kwargs)
    other = write_pool_cameras(tmp_path / "c", **{**kwargs, "seed": 8})
    for a, b in zip(one.images + one.region_masks, two.images + two.region_masks, strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(np.array_equal(a, b) for a, b in zip(one.boxes, two.boxes, strict=True))
    assert (tmp_path / "a" / "annotations.json").read_bytes() == (tmp_path / "b" / "annotations.json").read_bytes()
    assert not np.array_equal(one.images[0], other.images[0])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cameras": 3, "test_cameras": 0}, r"test_cameras must lie in 1\.\.2"),
    ({"cameras": 3, "test_cameras": 3}, r"test_cameras must lie in 1\.\.2"),
    ({"cameras": 1, "test_cameras": 1}, r"cameras must be at least 2"),
    ({"images_per_camera": 0}, r"images_per_camera must be at least 1"),
    ({"size": (89, 320)}, r"size must be at least \(90, 160\)"),
    ({"size": (180, 159)}, r"size must be at least \(90, 160\)"),
    ({"max_swimmers": 9}, r"max_swimmers must lie in 1\.\.8"),
    ({"max_swimmers": 0}, r"max_swimmers must lie in 1\.\.8"),
    ({"formats": ("png",)}, r"formats must be a non-empty subset"),
    ({"formats": ()}, r"formats must be a non-empty subset"),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_pool_cameras(tmp_path, **{"size": SMALL, **kwargs})
    assert not any(tmp_path.iterdir())  # refused before writing anything


def _digest(result: SyntheticPool) -> str:
    """sha256 over the returned pixels, boxes and pool masks and the annotation files' bytes."""
    digest = hashlib.sha256()
    for image, boxes, region in zip(result.images, result.boxes, result.region_masks):
        digest.update(image.tobytes())
        digest.update(boxes.astype("<i8").tobytes())
        digest.update(region.tobytes())
    for path in sorted(result.root.rglob("*")):
        if path.suffix in (".txt", ".xml", ".json"):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_write_pool_like_is_unchanged(tmp_path):
    """Recorded before write_pool_cameras was added: other benchmarks' figures depend on these
    exact images (numbers from NumPy's Generator and OpenCV's drawing in this environment)."""
    assert _digest(write_pool_like(tmp_path / "a", n_images=6, seed=3)) == (
        "70a93e183b3e68ee7be826606b2c294eb9301510b9bcb0955817c9c6db66c510")
    assert _digest(write_pool_like(tmp_path / "b", n_images=4, size=(360, 640), seed=5)) == (
        "82ebd3183dbaf903f38a686bf5bf0722e486134b37a80022ebe2337d27ac4743")
