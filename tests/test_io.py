import cv2
import numpy as np
import pytest

from dfr.data.io import list_images, load_images, read_image, to_float_image


def _write(path, image):
    assert cv2.imwrite(str(path), image)


def test_folder_listing_is_case_insensitive_natural_and_skips_hidden(tmp_path):
    image = np.zeros((4, 5), np.uint8)
    for name in ["frame10.PNG", "frame2.jpg", "frame1.TIFF", "._frame3.png", ".hidden.png"]:
        _write(tmp_path / name, image)
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path)] == ["frame1.TIFF", "frame2.jpg", "frame10.PNG"]


def test_empty_folder_names_folder_and_patterns(tmp_path):
    with pytest.raises(ValueError, match=r"no images found.*\*\.png.*\*\.tiff"):
        load_images(tmp_path)


def test_corrupt_file_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="broken.png: cannot decode"):
        load_images(tmp_path)


def test_missing_path_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        load_images([tmp_path / "nothing.png"])


def test_channel_rule_for_files(tmp_path):
    _write(tmp_path / "gray.png", np.full((3, 4), 255, np.uint8))
    _write(tmp_path / "bgr.png", np.dstack([np.full((3, 4), v, np.uint8) for v in (0, 0, 255)]))
    _write(tmp_path / "bgra.png", np.dstack([np.full((3, 4), v, np.uint8) for v in (255, 0, 0, 7)]))
    _write(tmp_path / "deep.png", np.full((3, 4), 65535, np.uint16))
    gray, rgb, rgba, deep = (read_image(tmp_path / n) for n in ["gray.png", "bgr.png", "bgra.png", "deep.png"])
    assert gray.shape == (3, 4, 1) and gray.max() == 1.0
    assert rgb.shape == (3, 4, 3) and rgb[0, 0].tolist() == [1.0, 0.0, 0.0]  # stored BGR red → RGB red
    assert rgba.shape == (3, 4, 3) and rgba[0, 0].tolist() == [0.0, 0.0, 1.0]  # alpha dropped
    assert deep.dtype == np.float32 and deep.max() == 1.0


def test_channel_rule_for_arrays():
    assert to_float_image(np.full((2, 2), 51, np.uint8)).max() == pytest.approx(0.2)
    assert to_float_image(np.zeros((2, 2, 2), np.uint8)).shape == (2, 2, 1)  # gray + alpha
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        to_float_image(np.full((2, 2), 3.0))
    with pytest.raises(ValueError, match="NaN"):
        to_float_image(np.full((2, 2), np.nan))


def test_array_forms():
    single, _ = load_images(np.zeros((8, 9, 3), np.uint8))
    stack, names = load_images(np.zeros((5, 8, 9), np.float32))
    mixed, _ = load_images([np.zeros((8, 9)), np.zeros((4, 4, 3))])
    assert len(single) == 1 and single[0].shape == (8, 9, 3)
    assert len(stack) == 5 and stack[0].shape == (8, 9, 1) and names[4] == "image_4"
    assert [m.shape for m in mixed] == [(8, 9, 1), (4, 4, 3)]


def test_wrong_shape_names_the_image():
    with pytest.raises(ValueError, match=r"image 1: expected an image"):
        load_images([np.zeros((4, 4)), np.zeros((4, 4, 7))])
    with pytest.raises(ValueError, match="shape"):
        load_images(np.zeros((2, 3, 4, 5, 6)))
    with pytest.raises(TypeError, match="only paths or only numpy arrays"):
        load_images(["a.png", np.zeros((2, 2))])
