"""model.stream and dfr stream: per-frame results of a video, causal, with files that survive an interruption."""
import json

import cv2
import numpy as np
import pytest

from baselines import CAE, STAE
from dfr.cli import main
from dfr.deploy.stream import Frame, open_source, read_frames, stream_to_folder


def _scene(rng, defect: bool = False) -> np.ndarray:
    """A gray 48x64 frame of soft stripes with noise; ``defect``: a bright square at (20, 30)."""
    frame = 0.4 + 0.2 * np.sin(np.arange(64) / 3.0)[None, :].repeat(48, 0) + 0.02 * rng.random((48, 64))
    if defect:
        frame[16:26, 26:36] = 1.0
    return (np.clip(frame, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def cae():
    rng = np.random.default_rng(0)
    return CAE("cpu", image_size=32, channels=8, bottleneck=16, epochs=15, device="cpu").fit(
        [_scene(rng) for _ in range(24)])


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """An MP4 of 30 frames; frames 10 to 14 have the defect."""
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("video") / "camera.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for index in range(30):
        writer.write(cv2.cvtColor(_scene(rng, defect=10 <= index < 15), cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def _frames_in(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_stream_command_writes_every_frame_and_flags_the_defect(cae, video, tmp_path, capsys):
    cae.save(tmp_path / "cae.dfr")
    assert main(["stream", str(tmp_path / "cae.dfr"), str(video), "--out", str(tmp_path / "live")]) == 0
    assert "30 frames (0 skipped" in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "live" / "frames.jsonl").read_text().splitlines()]
    assert [record["frame"] for record in records] == list(range(30))
    assert records[12]["time"] == pytest.approx(1.2) and records[12]["skipped"] == 0
    flagged = {record["frame"] for record in records if record["anomalous"]}
    assert set(range(10, 15)) <= flagged and len(flagged) <= 8
    assert all(record["boxes"] for record in records[10:15])
    assert _frames_in(tmp_path / "live" / "overlay.mp4") == 30

    assert main(["stream", str(tmp_path / "cae.dfr"), str(video), "--out", str(tmp_path / "live")]) == 2
    assert "folder is not empty" in capsys.readouterr().err
    assert main(["stream", str(tmp_path / "cae.dfr"), str(tmp_path / "none.mp4"), "--out", str(tmp_path / "x")]) == 2
    assert "none.mp4: no such video file" in capsys.readouterr().err


def test_an_interrupted_stream_leaves_complete_files(cae, video, tmp_path):
    capture, live = open_source(str(video))

    def interrupted():
        for frame in read_frames(capture, live=live):
            if frame.index == 7:
                raise KeyboardInterrupt
            yield frame

    summary = stream_to_folder(cae, interrupted(), tmp_path / "live", fps=10.0, progress=None)
    capture.release()
    assert summary["interrupted"] and summary["frames"] == 7
    assert len((tmp_path / "live" / "frames.jsonl").read_text().splitlines()) == 7
    assert _frames_in(tmp_path / "live" / "overlay.mp4") == 7
    assert sorted(path.name for path in tmp_path.iterdir()) == ["live"]


def test_max_frames_and_skipped_frames_are_recorded(cae, tmp_path):
    rng = np.random.default_rng(2)
    frames = [Frame(np.repeat(_scene(rng)[:, :, None], 3, 2), index, index / 10, 0 if index == 0 else 2)
              for index in range(0, 30, 3)]
    summary = stream_to_folder(cae, iter(frames), tmp_path / "live", fps=10.0, max_frames=4, progress=None)
    assert summary["frames"] == 4 and summary["skipped"] == 6
    records = [json.loads(line) for line in (tmp_path / "live" / "frames.jsonl").read_text().splitlines()]
    assert [record["frame"] for record in records] == [0, 3, 6, 9]


def test_stream_equals_predict_for_image_models_and_is_causal_for_clip_models(cae):
    rng = np.random.default_rng(3)
    frames = [_scene(rng, defect=index == 2) for index in range(4)]
    streamed = list(cae.stream(frames))
    predicted = cae.predict(frames)
    assert [result.name for result in streamed] == [f"frame_{index:06d}" for index in range(4)]
    for result, anomaly_map in zip(streamed, predicted.anomaly_maps):
        assert np.abs(result.anomaly_map - anomaly_map).max() <= 1e-4 * cae.score_stats_["pixel_q99"]

    clips = [(0.9 * rng.random((12, 30, 30))).astype(np.float32) for _ in range(2)]
    model = STAE("cpu", image_size=83, channels=(4, 4, 4), window=4, epochs=1, device="cpu").fit(clips)
    results = list(model.stream(clips[0]))
    changed = clips[0].copy()
    changed[6:] = 0.0
    again = list(model.stream(changed))
    assert len(results) == 12 and results[0].anomaly_map.shape == (30, 30)
    assert all(np.array_equal(a.anomaly_map, b.anomaly_map) and a.score == b.score
               for a, b in zip(results[:6], again[:6]))
    assert not np.array_equal(results[6].anomaly_map, again[6].anomaly_map)
