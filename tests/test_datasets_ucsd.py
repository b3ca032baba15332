import numpy as np
import pytest

from dfr.data.readers import (
    labels_to_ranges,
    load_clip,
    load_masks,
    parse_label_file,
    ranges_to_labels,
    read_ucsd,
)
from dfr.data.synthetic import write_ucsd_like
from dfr.data.synthetic.ucsd import FAST_SPEED, LARGE_FACTOR


def _small(root, name="UCSDped2", **kwargs):
    options = dict(n_train_clips=2, n_test_clips=3, frames=30, size=(60, 80), seed=0)
    return write_ucsd_like(root, name, **(options | kwargs))


def _check_read_back(dataset, truth):
    assert len(dataset.train_clips) == len(truth.train) and len(dataset.test_clips) == len(truth.test)
    for frames, clip in zip(dataset.train_clips + dataset.test_clips, truth.train + truth.test, strict=True):
        loaded = load_clip(frames)
        assert loaded.shape == clip.shape + (1,)
        np.testing.assert_array_equal(np.round(loaded[..., 0] * 255), clip)
    for labels, expected in zip(dataset.frame_labels, truth.frame_labels, strict=True):
        np.testing.assert_array_equal(labels, expected)
    assert sorted(dataset.pixel_masks) == truth.gt_clips
    for index, masks in dataset.pixel_masks.items():
        np.testing.assert_array_equal(load_masks(masks), truth.masks[index])


def test_ped2_like_output_is_read_back_exactly_and_junk_is_ignored(tmp_path):
    truth = _small(tmp_path)
    assert (truth.root / "Test" / "Test001" / "._001.tif").is_file()
    assert (truth.root / "Test" / "._UCSDped2.m").is_file() and (truth.root / ".DS_Store").is_file()
    dataset = read_ucsd(truth.root)
    assert dataset.name == "UCSDped2" and dataset.label_file.name == "UCSDped2.m"
    assert [path.name for path in dataset.test_clips[0][:3]] == ["001.tif", "002.tif", "003.tif"]
    assert all(not path.name.startswith(".") for clip in dataset.train_clips + dataset.test_clips for path in clip)
    assert dataset.test_names == ["Test001", "Test002", "Test003"]
    _check_read_back(dataset, truth)
    assert truth.gt_clips == [0, 1, 2]
    assert dataset.pixel_note == "UCSDped2: pixel masks for all 3 test clips"


def test_ped1_like_has_masks_for_some_clips_and_says_so(tmp_path):
    truth = _small(tmp_path, "UCSDped1", n_test_clips=4)
    dataset = read_ucsd(truth.root)
    _check_read_back(dataset, truth)
    assert truth.gt_clips == [0, 2]
    assert dataset.pixel_note == (
        "UCSDped1: pixel masks for 2 of 4 test clips (Test001, Test003); pixel metrics are over those clips only"
    )


def test_labels_are_exactly_the_frames_with_anomalous_pixels(tmp_path):
    truth = _small(tmp_path, n_test_clips=4, frames=40)
    text = (truth.root / "Test" / "UCSDped2.m").read_text().splitlines()
    assert text[0] == "TestVideoFile = {};" and len(text) == 5
    assert any(", " in line for line in text), "some clip should have several ranges"
    for labels, masks, kinds in zip(truth.frame_labels, truth.masks, truth.anomalies):
        np.testing.assert_array_equal(labels, masks.any(axis=(1, 2)))
        assert len(labels_to_ranges(labels)) == len(kinds)
    assert {kind for kinds in truth.anomalies for kind in kinds} == {"fast", "large"}


def test_anomalies_are_much_faster_or_much_larger_than_pedestrians(tmp_path):
    truth = _small(tmp_path, n_test_clips=4, frames=40, size=(120, 160))
    pedestrian_area = np.pi * (0.6 * 120 / 30) * (120 / 30)
    for masks, kinds in zip(truth.masks, truth.anomalies):
        for (first, last), kind in zip(labels_to_ranges(masks.any(axis=(1, 2))), kinds):
            episode = masks[first - 1 : last]
            centres = np.array([np.nonzero(frame)[1].mean() for frame in episode])
            speed = np.median(np.abs(np.diff(centres)))
            area = episode.sum(axis=(1, 2)).mean()
            if kind == "fast":
                assert speed == pytest.approx(FAST_SPEED, abs=0.5)
                assert area == pytest.approx(pedestrian_area, rel=0.35)
            else:
                assert speed == pytest.approx(1.0, abs=0.5)
                assert area == pytest.approx(LARGE_FACTOR**2 * pedestrian_area, rel=0.15)
    assert FAST_SPEED >= 4 and LARGE_FACTOR >= 3


def test_label_file_parsing(tmp_path):
    path = tmp_path / "UCSDped1.m"
    path.write_text(
        "TestVideoFile = {};\n"
        "TestVideoFile{end+1}.gt_frame = [60:152];\n"
        "% a comment with gt_frame = [1:2];\n"
        "TestVideoFile{end+1}.gt_frame = [5:90, 140:200];  % two ranges\n"
        "TestVideoFile{end+1}.gt_frame = [7 9:10];\n"
        "TestVideoFile{end+1}.gt_frame = [];\n"
    )
    assert parse_label_file(path) == [[(60, 152)], [(5, 90), (140, 200)], [(7, 7), (9, 10)], []]
    labels = ranges_to_labels([(5, 90), (140, 200)], 200)
    assert labels.sum() == 86 + 61 and labels[4] and not labels[3] and labels[199]
    assert labels_to_ranges(labels) == [(5, 90), (140, 200)]
    path.write_text("TestVideoFile{end+1}.gt_frame = [60-152];\n")
    with pytest.raises(ValueError, match=r"UCSDped1.m, line 1: bad frame range '60-152'"):
        parse_label_file(path)
    path.write_text("TestVideoFile{end+1}.gt_frame = [0:10];\n")
    with pytest.raises(ValueError, match=r"line 1: bad frame range '0:10' \(1-based"):
        parse_label_file(path)


def test_label_count_must_match_test_clips(tmp_path):
    truth = _small(tmp_path)
    label_file = truth.root / "Test" / "UCSDped2.m"
    label_file.write_text("\n".join(label_file.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"Test/UCSDped2.m: 2 label entries but 3 test clips"):
        read_ucsd(truth.root)


def test_label_range_past_the_clip_is_an_error(tmp_path):
    truth = _small(tmp_path)
    label_file = truth.root / "Test" / "UCSDped2.m"
    lines = label_file.read_text().splitlines()
    lines[2] = "TestVideoFile{end+1}.gt_frame = [3:31];"
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"UCSDped2.m: entry 2 \(Test002\): frame range 3:31 ends after the clip's 30"):
        read_ucsd(truth.root)


def test_missing_label_file_is_reported(tmp_path):
    truth = _small(tmp_path)
    (truth.root / "Test" / "UCSDped2.m").unlink()
    with pytest.raises(FileNotFoundError, match=r"expected one frame label file UCSDped2.m, found none"):
        read_ucsd(truth.root)


def test_unreadable_frame_is_an_error_or_skipped_on_request(tmp_path):
    truth = _small(tmp_path)
    broken = truth.root / "Test" / "Test002" / "010.tif"
    broken.write_bytes(b"II*\x00 truncated")
    with pytest.raises(ValueError, match=r"Test002/010.tif: cannot decode.*skip_unreadable=True"):
        read_ucsd(truth.root)
    with pytest.warns(UserWarning, match=r"skipping unreadable frame .*Test002/010.tif"):
        dataset = read_ucsd(truth.root, skip_unreadable=True)
    assert dataset.skipped == [broken]
    keep = np.arange(30) != 9
    assert len(dataset.test_clips[1]) == 29 and broken not in dataset.test_clips[1]
    np.testing.assert_array_equal(dataset.frame_labels[1], truth.frame_labels[1][keep])
    np.testing.assert_array_equal(load_masks(dataset.pixel_masks[1]), truth.masks[1][keep])
    np.testing.assert_array_equal(np.round(load_clip(dataset.test_clips[1])[..., 0] * 255), truth.test[1][keep])


def test_mask_count_must_match_frame_count(tmp_path):
    truth = _small(tmp_path)
    (truth.root / "Test" / "Test003_gt" / "030.bmp").unlink()
    with pytest.raises(ValueError, match=r"Test003_gt: 29 masks but 30 frames in Test003"):
        read_ucsd(truth.root)


def test_writing_refuses_a_non_empty_folder_unless_asked(tmp_path):
    _small(tmp_path)
    with pytest.raises(FileExistsError, match="UCSDped2: folder is not empty"):
        _small(tmp_path)
    truth = _small(tmp_path, seed=3, overwrite=True)
    _check_read_back(read_ucsd(truth.root), truth)
