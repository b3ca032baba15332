"""What dfr does with bad input, damaged files, interrupted runs and runs that collide.

Each test here is a row (or several) of the table in docs/reliability.md; the last test
checks that the table and the tests agree.
"""
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from baselines import CAE
from dfr import DFR, metrics, outputs, serialization
from dfr.cli import main
from dfr.data import synthetic
from dfr.data.io import MAX_IMAGE_PIXELS, list_images, read_image, to_float_image
from dfr.data.readers.pool import read_pool
from dfr.outputs import files
from dfr.outputs import writer as writer_module

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.filterwarnings("ignore:VGG19 with random weights")


def _png(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Eight 24x24 gray training images with a soft gradient and noise."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for index in range(8):
        image = np.clip(np.linspace(60, 180, 24)[None, :] + rng.normal(0, 8, (24, 24)), 0, 255)
        _png(folder / f"{index}.png", image.astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def cae_file(images, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "cae.dfr"
    CAE("cpu", epochs=2, seed=0).fit(images).save(path)
    return path


def _single_error_line(capsys, *fragments: str) -> str:
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    for fragment in fragments:
        assert fragment in error, error
    return error


def _write_or_skip(path: Path, data: bytes) -> None:
    """Write ``data``, or skip the test where the file system refuses such a name."""
    try:
        path.write_bytes(data)
    except (OSError, UnicodeEncodeError) as error:
        pytest.skip(f"this file system refuses the name: {error}")


def _leftovers(folder: Path) -> list[str]:
    """Hidden staging folders, temporary files and lock files in ``folder``."""
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


# ------------------------------------------------------------------------------------ images


def test_zero_byte_image_is_named(tmp_path, capsys, cae_file):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.png: empty file \(0 bytes\), not an image"):
        read_image(tmp_path / "in" / "empty.png")
    assert main(["predict", str(cae_file), str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2
    _single_error_line(capsys, "empty.png: empty file")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated_images_are_named(tmp_path, suffix):
    whole = tmp_path / f"whole{suffix}"
    cv2.imwrite(str(whole), np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"cut\{suffix}: cannot decode the file as an image \(truncated"):
        read_image(cut)


def test_wrong_extension_is_decoded_by_contents(tmp_path):
    picture = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    png_bytes = cv2.imencode(".png", picture)[1].tobytes()
    (tmp_path / "really_a_png.jpg").write_bytes(png_bytes)
    np.testing.assert_array_equal(read_image(tmp_path / "really_a_png.jpg")[..., 0], picture / np.float32(255))


def test_16_bit_images_keep_their_precision(tmp_path):
    picture = np.array([[0, 1, 65534, 65535]], np.uint16)
    image = read_image(_png(tmp_path / "deep.png", picture))
    assert image.dtype == np.float32 and image.shape == (1, 4, 1)
    np.testing.assert_array_equal(image[0, :, 0], picture[0] / np.float32(65535))
    assert image[0, 1, 0] > 0 and image[0, 2, 0] < 1  # not rounded to 8 bits


def test_palette_image_reads_as_colour(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putdata([0, 1])
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png")[0], [[1, 0, 0], [0, 0, 1]])


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)  # pure red
    image = read_image(tmp_path / "cmyk.jpg")
    assert image.shape == (8, 8, 3)
    np.testing.assert_allclose(image.mean(axis=(0, 1)), [1, 0, 0], atol=0.05)


def test_two_and_four_channel_images_drop_alpha(tmp_path):
    Image.fromarray(np.dstack([np.full((2, 3), 100, np.uint8), np.zeros((2, 3), np.uint8)]), "LA").save(tmp_path / "la.png")
    gray = read_image(tmp_path / "la.png")
    assert gray.shape == (2, 3, 1) and np.allclose(gray, 100 / 255)
    rgba = np.dstack([np.full((2, 3), v, np.uint8) for v in (10, 20, 30, 0)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    colour = read_image(tmp_path / "rgba.png")
    assert colour.shape == (2, 3, 3) and np.allclose(colour[0, 0], np.array([10, 20, 30]) / 255)


def test_exif_orientation_is_applied(tmp_path):
    picture = np.zeros((20, 40, 3), np.uint8)
    picture[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(picture).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    image = read_image(tmp_path / "rotated.jpg")
    assert image.shape == (40, 20, 3)
    assert image[:15].mean() > 0.9 and image[25:].mean() < 0.1  # the white half is now on top


def test_one_pixel_image_gives_a_one_pixel_map(cae_file, tmp_path):
    model = CAE.load(cae_file)
    prediction = model.predict(read_image(_png(tmp_path / "dot.png", np.array([[128]], np.uint8))))
    assert prediction.anomaly_maps[0].shape == (1, 1) and np.isfinite(prediction.scores).all()


def test_huge_declared_size_is_refused_before_decoding(tmp_path, monkeypatch):
    small = cv2.imencode(".png", np.zeros((2, 2), np.uint8))[1].tobytes()
    header = bytearray(small)
    header[16:24] = (50_000).to_bytes(4, "big") * 2  # IHDR width and height
    (tmp_path / "bomb.png").write_bytes(bytes(header))
    monkeypatch.setattr(cv2, "imdecode", lambda *args: pytest.fail("decoded a file it should have refused"))
    with pytest.raises(ValueError, match=rf"bomb.png: the header declares 50000 x 50000 pixels.*{MAX_IMAGE_PIXELS}"):
        read_image(tmp_path / "bomb.png")


def test_non_utf8_file_names_are_read_and_written(cae_file, images, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9_\xff.png")  # Latin-1, not UTF-8
    _write_or_skip(folder / name, (images / "0.png").read_bytes())
    out = tmp_path / "out"
    assert main(["predict", str(cae_file), str(folder), "--out", str(out)]) == 0
    assert "1 images" in capsys.readouterr().out
    stem = os.fsdecode(b"caf\xe9_\xff")
    assert (out / "maps" / f"{stem}.npy").is_file() and (out / "overlays" / f"{stem}.png").is_file()
    assert json.loads((out / "boxes.json").read_text())["images"][0]["name"] == stem
    assert (out / "scores.csv").read_bytes().splitlines()[1].startswith(b"caf\xe9_\xff,")


def test_very_long_file_names_get_short_unique_output_names(cae_file, images, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    long_names = ["é" * 125 + f"{index}.png" for index in range(2)]  # 255 bytes each, the most allowed
    for name in long_names:
        _write_or_skip(folder / name, (images / "0.png").read_bytes())
    out = tmp_path / "out"
    assert main(["predict", str(cae_file), str(folder), "--out", str(out)]) == 0
    written = sorted(path.name for path in (out / "maps").iterdir())
    assert len(written) == 2 and len(set(written)) == 2
    assert all(len(os.fsencode(name)) <= files.MAX_STEM_BYTES + 4 for name in written)
    assert sorted(record["name"] + ".npy" for record in json.loads((out / "boxes.json").read_text())["images"]) == written


def test_symlink_loops_are_skipped_or_named(images, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes((images / "0.png").read_bytes())
    os.symlink(folder / "loop1.png", folder / "loop2.png")
    os.symlink(folder / "loop2.png", folder / "loop1.png")
    os.symlink(folder, folder / "itself")
    assert [path.name for path in list_images(folder)] == ["a.png"]
    with pytest.raises(FileNotFoundError, match=r"loop1.png: symbolic link to nothing \(broken, or a loop"):
        read_image(folder / "loop1.png")


def test_unreadable_file_is_named(cae_file, images, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    locked = folder / "locked.png"
    locked.write_bytes((images / "0.png").read_bytes())
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the read fail as it would for a user
        fromfile = np.fromfile

        def denied(path, *args, **kwargs):
            if Path(path) == locked:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return fromfile(path, *args, **kwargs)
        monkeypatch.setattr(np, "fromfile", denied)
    assert main(["predict", str(cae_file), str(folder), "--out", str(tmp_path / "out")]) == 2
    _single_error_line(capsys, "Permission denied", "locked.png")
    assert not (tmp_path / "out").exists()


def test_mixed_sizes_in_one_folder_give_maps_at_each_size(cae_file, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, shape in (("small.png", (16, 20)), ("tall.png", (40, 24)), ("wide.png", (24, 48))):
        _png(folder / name, rng.integers(0, 256, shape, dtype=np.uint8))
    out = tmp_path / "out"
    assert main(["predict", str(cae_file), str(folder), "--out", str(out)]) == 0
    assert {name: np.load(out / "maps" / f"{Path(name).stem}.npy").shape for name in ("small.png", "tall.png", "wide.png")} \
        == {"small.png": (16, 20), "tall.png": (40, 24), "wide.png": (24, 48)}
    assert CAE("cpu", epochs=1, seed=0).fit(folder).threshold_ > 0  # and fits on them


# ----------------------------------------------------------------------------- video and labels


@pytest.fixture(scope="module")
def ucsd(tmp_path_factory) -> Path:
    return synthetic.write_ucsd_like(tmp_path_factory.mktemp("ucsd"), n_train_clips=1, n_test_clips=2, frames=12,
                                    size=(48, 64), seed=0).root


def test_one_frame_clips_and_clips_shorter_than_the_window():
    from baselines import STAE

    rng = np.random.default_rng(0)
    model = STAE("cpu", epochs=1, seed=0).fit([rng.random((12, 40, 40), dtype=np.float32) for _ in range(2)])
    for frames in (1, 3):  # played back and forth to a whole window: one map per frame
        prediction = model.predict([rng.random((frames, 40, 40), dtype=np.float32)])
        assert len(prediction.anomaly_maps) == frames and np.isfinite(prediction.scores).all()
    with pytest.raises(ValueError, match=r"training clips \(lengths \[1\]\) give 0 windows of window=10 frames; at least 2"):
        STAE("cpu", epochs=1).fit([rng.random((1, 40, 40), dtype=np.float32)] * 2)


def test_missing_or_extra_ground_truth_frames_are_named(ucsd, tmp_path):
    import shutil

    from dfr.data.readers.ucsd import read_ucsd

    for change in ("missing", "extra"):
        root = tmp_path / change / "UCSDped2"
        shutil.copytree(ucsd, root)
        gt = sorted((root / "Test" / "Test001_gt").iterdir())
        if change == "missing":
            gt[-1].unlink()
        else:
            shutil.copy(gt[-1], gt[-1].with_name("999.bmp"))
        expected = 11 if change == "missing" else 13
        with pytest.raises(ValueError, match=rf"Test001_gt: {expected} masks but 12 frames in Test001"):
            read_ucsd(root)


@pytest.mark.parametrize("text, problem", [
    ("TestVideoFile{1}.gt_frame = [5:3];\nTestVideoFile{2}.gt_frame = [1:2];", r"bad frame range '5:3'"),
    ("TestVideoFile{1}.gt_frame = [a:b];\nTestVideoFile{2}.gt_frame = [1:2];", r"bad frame range 'a:b'"),
    ("gt_frame = 5", r"line 1: cannot parse"),
    ("TestVideoFile{1}.gt_frame = [1:2];", r"1 label entries but 2 test clips"),
    ("TestVideoFile{1}.gt_frame = [1:2];\nTestVideoFile{2}.gt_frame = [10:20];", r"ends after the clip's 12 frames"),
])
def test_malformed_ucsd_label_files_are_named(ucsd, tmp_path, text, problem):
    import shutil

    from dfr.data.readers.ucsd import read_ucsd

    root = tmp_path / "UCSDped2"
    shutil.copytree(ucsd, root)
    (root / "Test" / "UCSDped2.m").write_text(text)
    with pytest.raises(ValueError, match=rf"UCSDped2.m.*{problem}"):
        read_ucsd(root)


def _pool_images(root: Path, count: int = 2) -> None:
    (root / "images").mkdir(parents=True)
    for index in range(count):
        _png(root / "images" / f"p{index}.png", np.zeros((20, 40, 3), np.uint8))


def test_yolo_boxes_out_of_range_or_empty_are_named(tmp_path):
    _pool_images(tmp_path)
    labels = tmp_path / "labels"
    labels.mkdir()
    for content, problem in (("0 0.5 0.5 1.5 0.2", r"p0.txt: box .* lies outside the 40x20 image"),
                             ("0 0.5 0.5 0 0.2", r"p0.txt: empty box"),
                             ("0 -0.5 0.5 0.2 0.2", r"p0.txt: box .* lies outside")):
        (labels / "p0.txt").write_text(content)
        with pytest.raises(ValueError, match=problem):
            read_pool(tmp_path, format="yolo")


def _voc(xmin: int, ymin: int, xmax: int, ymax: int) -> str:
    return (f"<annotation><size><width>40</width><height>20</height></size><object><bndbox><xmin>{xmin}</xmin>"
            f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object></annotation>")


def test_voc_boxes_out_of_range_or_empty_are_named(tmp_path):
    _pool_images(tmp_path)
    labels = tmp_path / "annotations"
    labels.mkdir()
    for content, problem in ((_voc(1, 1, 60, 10), r"p0.xml: box .* lies outside the 40x20 image"),
                             (_voc(10, 5, 8, 10), r"p0.xml: empty box"),
                             ("<annotation><object><name>x</name></object></annotation>", r"p0.xml: object 0 has no valid bndbox")):
        (labels / "p0.xml").write_text(content)
        with pytest.raises(ValueError, match=problem):
            read_pool(tmp_path, format="voc")


def test_coco_boxes_out_of_range_negative_or_for_missing_images_are_named(tmp_path):
    _pool_images(tmp_path)
    images = [{"id": index, "file_name": f"p{index}.png", "width": 40, "height": 20} for index in range(2)]

    def write(annotations, listed=images):
        (tmp_path / "annotations.json").write_text(json.dumps({"images": listed, "annotations": annotations}))

    for bbox, problem in (([30, 5, 20, 5], r"box .* lies outside the 40x20 image"),
                          ([10, 5, -4, 5], r"empty box"),
                          ([-9, 5, 4, 5], r"box .* lies outside")):
        write([{"id": 1, "image_id": 0, "bbox": bbox}])
        with pytest.raises(ValueError, match=rf"annotations.json \(image p0.png\): {problem}"):
            read_pool(tmp_path, format="coco")
    write([{"id": 7, "image_id": 5, "bbox": [1, 1, 2, 2]}])
    with pytest.raises(ValueError, match=r"annotations.json: annotation 7 refers to unknown image_id 5"):
        read_pool(tmp_path, format="coco")
    write([], images + [{"id": 2, "file_name": "gone.png", "width": 40, "height": 20}])
    with pytest.raises(ValueError, match=r"annotations.json: image 'gone.png' \(id 2\) not found"):
        read_pool(tmp_path, format="coco")


def test_labels_for_images_that_do_not_exist_are_named(tmp_path):
    _pool_images(tmp_path)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1")
    with pytest.raises(ValueError, match=r"labels/ghost.txt: annotation without an image"):
        read_pool(tmp_path, format="yolo")


# ------------------------------------------------------------------------------------ arrays


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_pixels_are_refused(value):
    image = np.full((4, 4), 0.5, np.float32)
    image[1, 2] = value
    with pytest.raises(ValueError, match="float image contains NaN or infinity"):
        to_float_image(image)


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.complex64, np.object_])
def test_wrong_pixel_types_are_refused(dtype):
    with pytest.raises(ValueError, match=rf"unsupported pixel type {np.dtype(dtype)}: use uint8, uint16 or float"):
        to_float_image(np.zeros((4, 4), dtype))


def test_float_pixels_outside_zero_one_are_refused():
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\], got values in \[0, 255\]"):
        to_float_image(np.array([[0.0, 255.0]]))


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0, 3)])
def test_empty_arrays_are_refused(shape, cae_file):
    with pytest.raises(ValueError, match="image has an empty side"):
        to_float_image(np.zeros(shape, np.uint8))
    with pytest.raises(ValueError, match="empty side"):
        CAE.load(cae_file).predict(np.zeros(shape, np.uint8))


def test_metrics_refuse_nan_maps_and_shape_mismatch():
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    bad = np.random.default_rng(0).random((8, 8))
    bad[0, 0] = np.nan
    for metric in (metrics.pixel_auroc, metrics.pro_auc):
        with pytest.raises(ValueError, match="map 0 contains 1 NaN values; scores must be finite"):
            metric([bad], [mask])
    with pytest.raises(ValueError, match=r"map 0 has shape \(8, 9\) but its mask has shape \(8, 8\)"):
        metrics.pixel_auroc([np.zeros((8, 9))], [mask])
    with pytest.raises(ValueError, match="got 2 maps but 1 masks"):
        metrics.pro_auc([bad, bad], [mask])


# ------------------------------------------------------------------------------- model files


def test_truncated_model_file_is_refused(cae_file, tmp_path, capsys):
    cut = tmp_path / "cut.dfr"
    cut.write_bytes(cae_file.read_bytes()[: cae_file.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.dfr: not a readable dfr model file, truncated or damaged"):
        CAE.load(cut)
    assert main(["predict", str(cut), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    _single_error_line(capsys, "cut.dfr: not a readable dfr model file")


def _weights_offset(path: Path) -> int:
    """Where the largest tensor's bytes start inside the model file."""
    with zipfile.ZipFile(path) as archive:
        largest = max((info for info in archive.infolist() if "/data/" in info.filename), key=lambda i: i.file_size)
    with open(path, "rb") as stream:  # stored uncompressed: data follow the local header
        stream.seek(largest.header_offset + 26)
        name_length, extra_length = (int.from_bytes(stream.read(2), "little") for _ in range(2))
    return largest.header_offset + 30 + name_length + extra_length


def test_flipped_bytes_in_the_weights_are_refused(cae_file, tmp_path):
    data = bytearray(cae_file.read_bytes())
    start = _weights_offset(cae_file) + 64
    data[start:start + 64] = bytes(byte ^ 0xFF for byte in data[start:start + 64])
    (tmp_path / "flipped.dfr").write_bytes(bytes(data))
    torch.load(tmp_path / "flipped.dfr", weights_only=True)  # still a well-formed file: only the digest tells
    with pytest.raises(ValueError, match="flipped.dfr: damaged model file: its contents do not match the digest"):
        CAE.load(tmp_path / "flipped.dfr")


def test_newer_format_version_is_refused(cae_file, tmp_path, monkeypatch):
    model = CAE.load(cae_file)
    monkeypatch.setattr(serialization, "FORMAT_VERSION", serialization.FORMAT_VERSION + 1)
    model.save(tmp_path / "newer.dfr")
    monkeypatch.undo()
    with pytest.raises(ValueError, match=rf"newer.dfr: model file format version {serialization.FORMAT_VERSION + 1} "
                                         r".*cannot be read by this dfr"):
        CAE.load(tmp_path / "newer.dfr")


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_pickle_payload_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    buffer = io.BytesIO()
    torch.save({"format": "dfr-model", "payload": _Payload()}, buffer)
    (tmp_path / "evil.dfr").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="evil.dfr: refused: the file holds Python objects other than tensors"):
        CAE.load(tmp_path / "evil.dfr")
    assert not (tmp_path / "pwned.txt").exists()


def test_huge_declared_tensor_is_refused_without_allocating(tmp_path):
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buffer)
    source, target = zipfile.ZipFile(buffer), io.BytesIO()
    with zipfile.ZipFile(target, "w") as archive:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data.pkl"):  # 4 elements -> 2**40 elements (4 TiB as float32)
                data = data.replace(b"K\x04", b"\x8a\x06" + (2**40).to_bytes(6, "little"))
            archive.writestr(info, data)
    (tmp_path / "huge.dfr").write_bytes(target.getvalue())
    # torch 2.13 fails to read it (RuntimeError); torch 2.8 reads it lazily and the record is refused
    with pytest.raises(ValueError, match=r"huge.dfr: not a (readable )?dfr model file"):
        serialization.read_model_file(tmp_path / "huge.dfr")


def test_model_file_of_another_class_is_named(cae_file, tmp_path, capsys):
    with pytest.raises(TypeError, match="cae.dfr: holds a CAE, not a DFR"):
        DFR.load(cae_file)
    with pytest.raises(ValueError, match=r"odd.dfr: payload keys \['digest'\] are reserved"):
        serialization.write_model_file(tmp_path / "odd.dfr", {"digest": "0" * 64})
    serialization.write_model_file(tmp_path / "odd.dfr", {"model_class": "baselines.cae.CAE", "params": {}})
    with pytest.raises(ValueError, match="odd.dfr: the model file's contents do not fit its model class"):
        CAE.load(tmp_path / "odd.dfr")


# ---------------------------------------------------------------------------------------- runs


def _start(stage: str, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.slow_cli", stage, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def _stop_when_started(process: subprocess.Popen, stop: signal.Signals) -> tuple[int, str]:
    """Wait for the run's ``started`` line, send ``stop``; return (exit status, stderr)."""
    line = process.stdout.readline()
    assert line == "started\n", line + process.stderr.read()
    process.send_signal(stop)
    _, error = process.communicate(timeout=60)
    return process.returncode, error


EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_fit_keeps_the_existing_model_file(images, cae_file, tmp_path, stop):
    model = tmp_path / "model.dfr"
    model.write_bytes(cae_file.read_bytes())
    process = _start("fit", "fit", "--model", "cae", "--preset", "cpu", "--epochs", "500", "--train", str(images),
                     "--out", str(model), "--overwrite")
    status, error = _stop_when_started(process, stop)
    assert status == EXIT_STATUS[stop] and f"dfr fit: stopped by {stop.name}" in error and "Traceback" not in error
    assert model.read_bytes() == cae_file.read_bytes() and _leftovers(tmp_path) == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_predict_leaves_no_partial_output(images, cae_file, tmp_path, stop):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("an earlier result")
    process = _start("predict", "predict", str(cae_file), str(images), "--out", str(out), "--overwrite")
    status, error = _stop_when_started(process, stop)
    assert status == EXIT_STATUS[stop] and f"dfr predict: stopped by {stop.name}" in error
    assert sorted(path.name for path in out.iterdir()) == ["mine.txt"] and _leftovers(tmp_path) == []


@pytest.mark.timeout(240)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stopped_bench_keeps_finished_runs_and_resumes(tmp_path, stop):
    synthetic.write_mvtec_like(tmp_path / "data", categories=("brick",), n_train=6, n_test=4, size=48, seed=0)
    out = tmp_path / "bench"
    command = ["bench", "--dataset", "mvtec", "--root", str(tmp_path / "data"), "--models", "a,b", "--out", str(out)]
    status, error = _stop_when_started(_start("bench", *command), stop)
    assert status == EXIT_STATUS[stop] and f"dfr bench: stopped by {stop.name}" in error
    runs = out / "runs" / "mvtec" / "brick"
    assert sorted(path.name for path in runs.iterdir()) == ["a"] and (runs / "a" / "result.json").is_file()  # b removed
    finished = (runs / "a" / "result.json").read_bytes()
    resumed = subprocess.run([sys.executable, "-m", "tests.slow_cli", "resume", *command, "--resume"], cwd=ROOT,
                             capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert resumed.returncode == 0, resumed.stderr
    assert (runs / "a" / "result.json").read_bytes() == finished  # read back, not refitted
    assert [run["model"] for run in json.loads((out / "results.json").read_text())["runs"]] == ["a", "b"]
    assert _leftovers(tmp_path) == []


def test_interrupted_save_keeps_the_old_model_file(cae_file, tmp_path, monkeypatch):
    path = tmp_path / "model.dfr"
    path.write_bytes(cae_file.read_bytes())

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(serialization.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        CAE.load(cae_file).save(path)
    assert path.read_bytes() == cae_file.read_bytes() and _leftovers(tmp_path) == []


def test_second_predict_into_the_same_folder_is_refused(cae_file, images, tmp_path, capsys):
    out = tmp_path / "out"
    with outputs.output_lock(out):  # a first run is writing out
        assert main(["predict", str(cae_file), str(images), "--out", str(out)]) == 2
        _single_error_line(capsys, f"{out}: another dfr run (process {os.getpid()}) is writing this folder")
    assert not out.exists() and _leftovers(tmp_path) == []
    assert main(["predict", str(cae_file), str(images), "--out", str(out)]) == 0  # the lock is gone with the run


@pytest.mark.timeout(120)
def test_second_run_in_another_process_is_refused(cae_file, images, tmp_path):
    out, gate = tmp_path / "out", tmp_path / "gate"
    first = _start("predict", "predict", str(cae_file), str(images), "--out", str(out), DFR_TEST_GATE=str(gate))
    assert first.stdout.readline() == "started\n"  # and waits for the gate
    second = subprocess.run([sys.executable, "-m", "dfr", "predict", str(cae_file), str(images),
                             "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    gate.touch()
    assert second.returncode == 2 and f"another dfr run (process {first.pid})" in second.stderr
    first.communicate(timeout=60)
    assert first.returncode == 0 and len(list((out / "maps").iterdir())) == 8


def test_second_bench_into_the_same_folder_is_refused(tmp_path, capsys):
    with outputs.output_lock(tmp_path / "bench"):
        assert main(["bench", "--dataset", "mvtec", "--root", str(tmp_path), "--models", "cae",
                     "--out", str(tmp_path / "bench")]) == 2
    _single_error_line(capsys, "another dfr run")


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_during_predict_leaves_nothing(cae_file, images, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(writer_module.np, "save", _full_disk)
    assert main(["predict", str(cae_file), str(images), "--out", str(tmp_path / "out")]) == 2
    _single_error_line(capsys, "No space left on device")
    assert not (tmp_path / "out").exists() and _leftovers(tmp_path) == []


def test_full_disk_during_fit_keeps_the_old_model_file(cae_file, images, tmp_path, capsys, monkeypatch):
    path = tmp_path / "model.dfr"
    path.write_bytes(cae_file.read_bytes())
    monkeypatch.setattr(serialization.torch, "save", _full_disk)
    assert main(["fit", "--model", "cae", "--preset", "cpu", "--epochs", "1", "--train", str(images),
                 "--out", str(path), "--overwrite"]) == 2
    _single_error_line(capsys, "No space left on device")
    assert path.read_bytes() == cae_file.read_bytes() and _leftovers(tmp_path) == []


def test_read_only_output_folder_is_named(cae_file, images, tmp_path, capsys, monkeypatch):
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: fail as the file system would for a user
        def read_only(*args, dir=None, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        monkeypatch.setattr(files.tempfile, "mkdtemp", read_only)
    try:
        assert main(["predict", str(cae_file), str(images), "--out", str(parent / "out")]) == 2
    finally:
        parent.chmod(0o755)
    _single_error_line(capsys, "Permission denied", "shared")
    assert list(parent.iterdir()) == []


def test_debug_flag_shows_the_traceback(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "none.dfr"), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    _single_error_line(capsys, "dfr predict: error:", "none.dfr: no such model file")
    with pytest.raises(FileNotFoundError, match="none.dfr: no such model file"):
        main(["predict", str(tmp_path / "none.dfr"), str(tmp_path), "--out", str(tmp_path / "out"), "--debug"])


def test_unexpected_errors_exit_1_and_ask_for_a_report(cae_file, images, tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(CAE, "_maps", broken)
    assert main(["predict", str(cae_file), str(images), "--out", str(tmp_path / "out")]) == 1
    _single_error_line(capsys, "unexpected error (ZeroDivisionError: a bug); run again with --debug")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------- the table


def test_reliability_table_names_existing_tests():
    """docs/reliability.md lists at least 40 cases, each shown by a test that exists."""
    table = [line for line in (ROOT / "docs" / "reliability.md").read_text().splitlines()
             if line.startswith("|") and not line.startswith("| Case") and not line.startswith("|---")]
    assert len(table) >= 40
    defined = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        for name in re.findall(r"^def (test_\w+)", path.read_text(), flags=re.MULTILINE):
            defined[name] = path.name
    for row in table:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 3 and cells[0] and cells[1], row
        named = re.findall(r"`(\w+\.py)::(test_\w+)`", cells[2])
        assert named, f"no test named in: {row}"
        for file, test in named:
            assert defined.get(test) == file, f"{file}::{test} does not exist ({row})"
