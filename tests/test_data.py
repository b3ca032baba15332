"""Lazy datasets: images are read when reached, with their region masks checked then."""
import cv2
import numpy as np
import pytest

from dfr.data.datasets import ImageDataset, batches, chunks


@pytest.fixture
def folder(tmp_path):
    for index in range(5):
        cv2.imwrite(str(tmp_path / f"im{index}.png"), np.full((6, 8), 40 * index, np.uint8))
    return tmp_path


def test_images_are_decoded_only_when_reached(folder):
    (folder / "im9.png").write_bytes(b"broken")
    dataset = ImageDataset(folder)  # listing the folder reads no image
    assert len(dataset) == 6 and dataset.item_names()[-1] == "im9.png"
    assert dataset[2].shape == (6, 8, 1) and dataset[2].max() == pytest.approx(80 / 255)
    with pytest.raises(ValueError, match="im9.png: cannot decode"):
        dataset[5]
    subset = dataset.subset([4, 0])
    assert subset.item_names() == ["im4.png", "im0.png"] and subset[0].max() == pytest.approx(160 / 255)


@pytest.mark.parametrize("workers", [0, 2])
def test_chunks_keep_the_input_order_with_worker_processes(folder, workers):
    dataset = ImageDataset(folder, np.ones((6, 8), np.uint8))
    read = list(chunks(dataset, 2, workers=workers))
    assert [names for names, _, _ in read] == [["im0.png", "im1.png"], ["im2.png", "im3.png"], ["im4.png"]]
    assert [float(image.max()) for _, images, _ in read for image in images] == pytest.approx(
        [40 * i / 255 for i in range(5)])
    assert all(region.all() for _, _, regions in read for region in regions)
    assert [len(batch) for batch in batches(list(range(5)), 2)] == [2, 2, 1]


def test_region_masks_are_checked_against_their_image(folder, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for index in range(5):
        cv2.imwrite(str(masks / f"m{index}.png"), np.full((6, 8) if index != 3 else (6, 9), 255, np.uint8))
    dataset = ImageDataset(folder, masks, pairs=True)
    image, region = dataset[1]
    assert region.dtype == bool and region.all()
    with pytest.raises(ValueError, match=r"m3.png has shape \(6, 9\) but image im3.png has size \(6, 8\)"):
        dataset[3]
    with pytest.raises(ValueError, match="2 region masks for 5 images"):
        ImageDataset(folder, [np.ones((6, 8))] * 2)
