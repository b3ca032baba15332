"""torch.distributed on CPU: ``torchrun --nproc_per_node=2`` (gloo) against one process.

Each run gets a hard timeout: a hang is a failure, never a stuck suite.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import dfr
from dfr.outputs.files import output_lock

BIN = Path(sys.executable).parent
TIMEOUT = 300  # seconds for one command, however many processes


def run(command: list[str], processes: int = 1) -> subprocess.CompletedProcess:
    """``dfr <command>`` in one process, or under torchrun in ``processes`` (killed on timeout)."""
    prefix = [str(BIN / "dfr")] if processes == 1 else [
        str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={processes}", "--no-python", str(BIN / "dfr")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with subprocess.Popen(prefix + command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"{' '.join(command[:2])} with {processes} processes did not finish in {TIMEOUT} s")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, brick):
    root = tmp_path_factory.mktemp("distributed")
    for name, images in (("train", brick.train[:11]), ("test", brick.test[:5])):
        (root / name).mkdir()
        for index, image in enumerate(images):
            cv2.imwrite(str(root / name / f"{name[:2]}{index}.png"), (image[:64, :64] * 255).astype(np.uint8))
    return root


HEAD = ["--model", "pca-residual", "--weights", "random", "--image-size", "64", "--layers", "relu1_1,relu2_1,relu3_1"]


def test_two_processes_fit_and_predict_what_one_process_does(folders):
    """The feature heads sample and gather exactly what one process does: the same maps,
    threshold and output files (tolerance 1e-5 of the map range: summation order)."""
    models = {}
    for processes in (1, 2):
        models[processes] = folders / f"head{processes}.dfr"
        done = run(["fit", *HEAD, "--train", str(folders / "train"), "--out", str(models[processes])], processes)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"world size {processes}" in done.stdout
    one, two = dfr.load(models[1], device="cpu"), dfr.load(models[2], device="cpu")
    assert (one.world_size_, two.world_size_) == (1, 2)
    assert two.threshold_ == pytest.approx(one.threshold_, rel=1e-5)
    maps_one, maps_two = one.anomaly_map(folders / "test"), two.anomaly_map(folders / "test")
    assert np.abs(maps_two - maps_one).max() <= 1e-5 * np.ptp(maps_one)

    outputs = {}
    for processes in (1, 2):
        outputs[processes] = folders / f"out{processes}"
        done = run(["predict", str(models[1]), str(folders / "test"), "--out", str(outputs[processes])], processes)
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"world size {processes}" in done.stdout
    files = {p: sorted(str(f.relative_to(outputs[p])) for f in outputs[p].rglob("*") if f.is_file()) for p in (1, 2)}
    assert files[1] == files[2] and len(files[1]) == 4 * 5 + 2
    for name in files[1]:  # batches differ (3 and 2 images per process), so float results may differ in the last bits
        if name.endswith(".npy"):
            np.testing.assert_allclose(np.load(outputs[2] / name), np.load(outputs[1] / name), rtol=1e-5)
        elif name.startswith("masks"):
            assert np.array_equal(cv2.imread(str(outputs[2] / name)), cv2.imread(str(outputs[1] / name)))
    summaries = [json.loads((outputs[p] / "boxes.json").read_text()) for p in (1, 2)]
    assert [r["name"] for r in summaries[1]["images"]] == [r["name"] for r in summaries[0]["images"]] == [
        f"te{index}" for index in range(5)]
    for first, second in zip(summaries[0]["images"], summaries[1]["images"]):
        assert second["score"] == pytest.approx(first["score"], rel=1e-5)
        np.testing.assert_allclose(np.array(second["boxes"]).reshape(-1, 5), np.array(first["boxes"]).reshape(-1, 5),
                                   rtol=1e-4, atol=1e-4)


def test_two_processes_fit_on_tiles_what_one_process_does(folders):
    """A tiled fit shares the tiles of the training images among the processes, as it shares
    images: 9 tiles of 32 x 32 per 64 x 64 image, the same model as one process fits."""
    models = {}
    for processes in (1, 2):
        models[processes] = folders / f"tiled{processes}.dfr"
        done = run(["fit", *HEAD, "--image-size", "32", "--tile-size", "32", "--train", str(folders / "train"),
                    "--out", str(models[processes])], processes)
        assert done.returncode == 0, done.stderr[-2000:]
    one, two = dfr.load(models[1], device="cpu"), dfr.load(models[2], device="cpu")
    assert len(one.tiles(64, 64)) == 9
    assert two.threshold_ == pytest.approx(one.threshold_, rel=1e-5)
    maps_one, maps_two = one.anomaly_map(folders / "test"), two.anomaly_map(folders / "test")
    assert np.abs(maps_two - maps_one).max() <= 1e-5 * np.ptp(maps_one)


def test_two_processes_train_an_autoencoder_with_ddp(folders):
    """CAE under DistributedDataParallel: each process trains on half the images, gradients are
    averaged, so the weights differ from one process's; stated tolerance: maps correlate > 0.9
    and the thresholds agree within 25 %."""
    models = {}
    for processes in (1, 2):
        models[processes] = folders / f"cae{processes}.dfr"
        done = run(["fit", "--model", "cae", "--preset", "cpu", "--epochs", "20", "--train", str(folders / "train"),
                    "--out", str(models[processes])], processes)
        assert done.returncode == 0, done.stderr[-2000:]
    one, two = dfr.load(models[1], device="cpu"), dfr.load(models[2], device="cpu")
    maps_one, maps_two = one.anomaly_map(folders / "test"), two.anomaly_map(folders / "test")
    assert np.corrcoef(maps_one.ravel(), maps_two.ravel())[0, 1] > 0.9
    assert two.threshold_ == pytest.approx(one.threshold_, rel=0.25)


@pytest.mark.parametrize("model", [HEAD, ["--model", "cae", "--preset", "cpu", "--epochs", "2"]], ids=["head", "ddp"])
def test_a_bad_file_on_one_rank_stops_every_rank_with_its_name(folders, tmp_path, model):
    train = tmp_path / "train"
    train.mkdir()
    for path in (folders / "train").iterdir():
        (train / path.name).write_bytes(path.read_bytes())
    (train / "tr3.png").write_bytes(b"not a png")
    done = run(["fit", *model, "--train", str(train), "--out", str(tmp_path / "m.dfr")], 2)
    assert done.returncode != 0
    messages = (done.stdout + done.stderr).split("dfr fit: error: ")[1:]  # the ranks' lines may interleave
    assert len(messages) == 2 and all("tr3.png: cannot decode" in message for message in messages), messages
    assert not (tmp_path / "m.dfr").exists()


def test_bench_under_torchrun_reports_the_metrics_of_one_process(tmp_path):
    """``dfr bench`` with 2 processes: both fit, rank 0 evaluates and writes; the feature
    head's metrics equal one process's."""
    from dfr.data import synthetic

    synthetic.write_mvtec_like(tmp_path / "data", categories=("brick",), n_train=8, n_test=4, size=48, seed=0)
    metrics = {}
    for processes in (1, 2):
        out = tmp_path / f"bench{processes}"
        done = run(["bench", "--dataset", "mvtec", "--root", str(tmp_path / "data"), "--models", "pca-residual",
                    "--vgg-weights", "random", "--out", str(out)], processes)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.count("wrote results.json") == 1 and f"(world size {processes})" in done.stdout
        [result] = json.loads((out / "results.json").read_text())["runs"]
        assert result["world_size"] == processes
        metrics[processes] = result["metrics"]
    assert metrics[2]["pixel_auroc"] == pytest.approx(metrics[1]["pixel_auroc"], abs=1e-6)
    assert metrics[2]["pro_auc"] == pytest.approx(metrics[1]["pro_auc"], abs=1e-6)
    written = (tmp_path / "bench2" / "results.json").read_bytes()
    with output_lock(tmp_path / "bench2"):  # another run is writing bench2: every rank stops, none hangs
        done = run(["bench", "--dataset", "mvtec", "--root", str(tmp_path / "data"), "--models", "pca-residual",
                    "--vgg-weights", "random", "--out", str(tmp_path / "bench2"), "--overwrite"], 2)
    assert done.returncode != 0 and done.stderr.count(f"another dfr run (process {os.getpid()})") == 2, done.stderr
    assert (tmp_path / "bench2" / "results.json").read_bytes() == written


def test_every_kind_of_model_fits_and_predicts_under_torchrun(folders, tmp_path):
    """DFR (sampling, gathered PCA sample, DDP autoencoder), PoolAE (DDP, region masks,
    per-position normalisation: all-reduced sums) and a video model (clips sharded, DDP)."""
    from dfr.data.synthetic import write_ucsd_like

    mask = np.zeros((64, 64), np.uint8)
    mask[8:56, 8:56] = 255
    cv2.imwrite(str(tmp_path / "region.png"), mask)
    write_ucsd_like(tmp_path / "ucsd", n_train_clips=3, n_test_clips=2, frames=12, size=(48, 64), seed=0)
    clips = tmp_path / "ucsd" / "UCSDped2"
    runs = {
        "dfr": (["--model", "dfr", "--weights", "random", "--image-size", "64", "--layers", "relu1_1,relu2_1",
                 "--epochs", "2"], folders / "train", folders / "test", []),
        "poolae": (["--model", "poolae", "--preset", "cpu", "--epochs", "1", "--normalise-positions", "true"],
                   folders / "train", folders / "test", ["--region-masks", str(tmp_path / "region.png")]),
        "stae": (["--model", "stae", "--preset", "cpu", "--image-size", "83", "--epochs", "1"],
                 clips / "Train", clips / "Test", []),
    }
    for name, (flags, train, test, regions) in runs.items():
        model = tmp_path / f"{name}.dfr"
        done = run(["fit", *flags, "--train", str(train), *regions, "--out", str(model)], 2)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "world size 2" in done.stdout and dfr.load(model, device="cpu").world_size_ == 2
        done = run(["predict", str(model), str(test), *regions, "--out", str(tmp_path / f"{name}-out")], 2)
        assert done.returncode == 0, done.stderr[-2000:]
        summary = json.loads((tmp_path / f"{name}-out" / "boxes.json").read_text())
        expected = 24 if name == "stae" else 5
        assert len(summary["images"]) == expected == len(list((tmp_path / f"{name}-out" / "maps").iterdir()))
