"""Raw-pixel baselines on small generated data: real detections, clip alignment, model-specific rules
(what every model passes, persistence and export included: tests/test_common.py)."""
import cv2
import numpy as np
import pytest
import torch

from baselines import CAE, STAE, ConvLSTMAE, PoolAE, inpaint_boxes
from baselines.stae import SubPixelTransposedConv
from baselines.video import ClipDataset
from dfr.metrics import frame_auc, regularity_score
from dfr.scoring import image_scores, smooth
from tests.conftest import pixel_auc

# ------------------------------------------------------------------------ generated data


def smooth_noise(rng, shape, sigma):
    field = cv2.GaussianBlur(rng.normal(0.0, 1.0, shape).astype(np.float32), (0, 0), sigma)
    return field / (field.std() + 1e-6)


def stripes(rng, n, size=32):
    """Gray images: sinusoidal stripes of random orientation and phase, plus a little noise."""
    yy, xx = np.mgrid[:size, :size] / size
    images = []
    for _ in range(n):
        angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * 1.5 * (np.cos(angle) * xx + np.sin(angle) * yy) + phase)
        images.append(np.clip(0.45 + 0.15 * wave + 0.02 * rng.normal(size=(size, size)), 0, 1).astype(np.float32))
    return images


def plant_blob(rng, image, radius=3):
    """A bright disc at a random place; returns (image, bool mask)."""
    cy, cx = rng.integers(radius + 2, image.shape[0] - radius - 2, 2)
    yy, xx = np.ogrid[: image.shape[0], : image.shape[1]]
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    image = image.copy()
    image[mask] = 1.0
    return image, mask


def pool_scene(rng, size=(48, 64), swimmers=0, outside_object=False):
    """RGB water with caustics inside a rectangular pool, deck around it; dark swimmers inside.

    Returns (image float32 (H, W, 3), region bool, swimmer mask bool). With the same seed,
    ``outside_object=True`` gives the same image plus a red object on the deck.
    """
    h, w = size
    region = np.zeros(size, bool)
    region[8 : h - 4, 6 : w - 6] = True
    deck = np.array([0.78, 0.74, 0.66], np.float32) * (1 + 0.04 * smooth_noise(rng, size, 1.5))[:, :, None]
    caustics = np.exp(-((smooth_noise(rng, size, 2.0) / 0.3) ** 2))
    image = np.where(region[:, :, None], np.array([0.12, 0.45, 0.70]) + 0.2 * caustics[:, :, None], deck)
    truth = np.zeros(size, bool)
    yy, xx = np.ogrid[:h, :w]
    for _ in range(swimmers):
        cy, cx = rng.integers(14, h - 10), rng.integers(14, w - 14)
        body = ((yy - cy) / 2.5) ** 2 + ((xx - cx) / 6.0) ** 2 <= 1
        image[body] = [0.37, 0.25, 0.2]
        truth |= body
    if outside_object:
        image[((yy - 3) / 2.5) ** 2 + ((xx - 30) / 6.0) ** 2 <= 1] = [0.9, 0.1, 0.1]
    return np.clip(image, 0, 1).astype(np.float32), region, truth


def walkers(rng, frames, size=(24, 40), fast=None, speed=5.0):
    """Gray clip: two ellipses walking along two lanes at 1 px/frame, leaving at one side and
    coming back at the other, over a static textured scene. During ``fast = (start, stop)`` the
    first one moves at ``speed`` px/frame. Returns (clip (T, H, W) float32, labels bool (T,)):
    a frame is anomalous when the fast walker is at least mostly in view."""
    h, w = size
    margin, period = 4, w + 8
    scene = 0.4 + 0.05 * smooth_noise(np.random.default_rng(123), size, 3)
    lanes = [h / 3, 2 * h / 3]
    xs, directions = rng.uniform(0, period, 2), rng.choice([-1.0, 1.0], 2)
    yy, xx = np.ogrid[:h, :w]
    clip, labels = [], []
    for t in range(frames):
        frame, anomalous = scene.copy(), False
        running = fast is not None and fast[0] <= t < fast[1]
        for k in range(2):
            body = ((yy - lanes[k]) / 3.0) ** 2 + ((xx - (xs[k] % period - margin)) / 2.5) ** 2 <= 1
            frame[body] = 0.9
            anomalous |= bool(running and k == 0 and body.sum() >= 20)
            xs[k] += directions[k] * (speed if running and k == 0 else 1.0)
        clip.append(frame)
        labels.append(anomalous)
    return np.clip(np.stack(clip), 0, 1).astype(np.float32), np.array(labels)


# ------------------------------------------------------------------------ fitted models


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    test, masks = zip(*[plant_blob(rng, image) for image in stripes(rng, 8)])
    return {"train": stripes(rng, 40), "test": list(test), "masks": list(masks)}


@pytest.fixture(scope="module")
def cae(blobs):
    settings = dict(image_size=32, channels=8, bottleneck=32, epochs=20, batch_size=8, learning_rate=1e-3)
    return CAE("cpu", device="cpu", **settings).fit(blobs["train"])


@pytest.fixture(scope="module")
def pool():
    rng = np.random.default_rng(0)
    train = [pool_scene(rng) for _ in range(12)]
    test = [pool_scene(rng, swimmers=2) for _ in range(6)]
    return {"train": train, "test": test}


def _pool_model(pool, **kwargs):
    settings = dict(width=None, channels=(8, 16, 16, 16), crop_size=32, epochs=25, device="cpu") | kwargs
    images, regions = [image for image, _, _ in pool["train"]], [region for _, region, _ in pool["train"]]
    return PoolAE("cpu", **settings).fit(images, region_masks=regions)


@pytest.fixture(scope="module")
def pool_ae(pool):
    return _pool_model(pool)


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(3)
    train = [walkers(rng, 40)[0] for _ in range(4)]
    test = [walkers(rng, 60, fast=(20, 40)) for _ in range(2)]
    return {"train": train, "test": [clip for clip, _ in test], "labels": [labels for _, labels in test]}


@pytest.fixture(scope="module")
def stae(clips):
    return STAE("cpu", device="cpu").fit(clips["train"])


@pytest.fixture(scope="module")
def convlstm(clips):
    return ConvLSTMAE("cpu", device="cpu").fit(clips["train"])


# ------------------------------------------------------------------------ CAE


def test_cae_finds_planted_blobs(cae, blobs):
    prediction = cae.predict(blobs["test"])
    assert pixel_auc(prediction.anomaly_maps, blobs["masks"]) >= 0.85
    assert prediction.anomaly_maps.shape == (8, 32, 32) and prediction.anomaly_maps.dtype == np.float32
    assert np.allclose(prediction.scores, image_scores(list(prediction.anomaly_maps), cae.scoring))
    assert cae.training_loss_[-1] < cae.training_loss_[0]


def test_cae_map_is_the_box_summed_absolute_error(cae, blobs):
    import torch

    image = blobs["test"][0]
    with torch.no_grad():
        reconstruction = cae.network_(torch.from_numpy(image)[None, None])[0, 0].numpy()
    error = np.pad(np.abs(image - reconstruction) * 255, 2)
    # the source's heatmap: a 4x4 box sum (rows and columns -2 … +1), zero outside the image
    expected = sum(error[dy : dy + 32, dx : dx + 32] for dy in range(4) for dx in range(4))
    # then the shared smoothing of the scoring settings
    expected = smooth(expected.astype(np.float32), cae.scoring.smoothing_sigma)
    np.testing.assert_allclose(cae.anomaly_map(image)[0], expected, rtol=1e-4, atol=1e-2)


def test_cae_fixed_threshold_rule(blobs):
    model = CAE("cpu", image_size=16, channels=4, bottleneck=8, epochs=1, threshold_rule="fixed", device="cpu")
    assert model.fit(blobs["train"][:6]).threshold_ == 4 * 255
    with pytest.raises(ValueError, match="threshold_rule"):
        CAE("cpu", threshold_rule="sometimes").fit(blobs["train"][:6])


def test_cae_maps_at_each_input_size(cae, blobs):
    maps = cae.anomaly_map([blobs["test"][0][:20, :28], np.dstack([blobs["test"][1]] * 3)])
    assert isinstance(maps, list) and maps[0].shape == (20, 28) and maps[1].shape == (32, 32)


# ------------------------------------------------------------------------ PoolAE


def test_pool_ae_finds_swimmers_inside_the_region(pool_ae, pool):
    images, regions, truth = (list(x) for x in zip(*pool["test"]))
    maps = pool_ae.anomaly_map(images, region_masks=regions)
    inside = np.stack(regions)
    assert pixel_auc([maps[inside]], [np.stack(truth)[inside]]) >= 0.85
    assert np.all(maps[~inside] == 0.0)


def test_pool_ae_ignores_everything_outside_the_region(pool_ae):
    clean, region, _ = pool_scene(np.random.default_rng(5))
    with_object, _, _ = pool_scene(np.random.default_rng(5), outside_object=True)
    prediction = pool_ae.predict([clean, with_object], region_masks=region)
    assert prediction.scores[1] == prediction.scores[0]
    assert np.array_equal(prediction.anomaly_maps[0], prediction.anomaly_maps[1])
    assert not prediction.masks[:, ~region].any()
    without_region = pool_ae.anomaly_map([clean, with_object])  # whole images: the object counts
    assert without_region[1][:8].max() > without_region[0][:8].max()


def test_pool_ae_is_seeded(pool):
    image, region, _ = pool_scene(np.random.default_rng(9), swimmers=1)
    first = _pool_model(pool, epochs=2, seed=4).anomaly_map(image, region_masks=region)
    second = _pool_model(pool, epochs=2, seed=4).anomaly_map(image, region_masks=region)
    other = _pool_model(pool, epochs=2, seed=5).anomaly_map(image, region_masks=region)
    assert np.array_equal(first, second) and not np.allclose(first, other)


def test_pool_ae_region_mask_forms_and_errors(pool_ae, pool, tmp_path):
    image, region, _ = pool["test"][0]
    reference = pool_ae.anomaly_map(image, region_masks=[region])
    cv2.imwrite(str(tmp_path / "mask.png"), region.astype(np.uint8) * 255)
    assert np.array_equal(pool_ae.anomaly_map(image, region_masks=[tmp_path / "mask.png"]), reference)
    assert np.array_equal(pool_ae.anomaly_map(image, region_masks=region[None]), reference)
    with pytest.raises(ValueError, match="2 region masks for 1 images"):
        pool_ae.predict(image, region_masks=[region, region])
    with pytest.raises(ValueError, match=r"shared region mask has shape \(10, 64\) but image image_0 has size \(48, 64\)"):
        pool_ae.predict(image, region_masks=region[:10])
    with pytest.raises(ValueError, match="validation_region_masks given without"):
        PoolAE().fit([image], validation_region_masks=[region])


def test_pool_ae_augmentation_keeps_crops_inside_the_region(pool_ae, pool):
    image, region, _ = pool["train"][0]
    prepared, weight = pool_ae._prepare(image, region)
    rng = np.random.default_rng(0)
    for _ in range(20):
        crop, crop_weight = pool_ae._augment(prepared, weight, 32, rng)
        assert crop.shape == (32, 32, 3) and crop_weight.shape == (32, 32) and crop_weight.max() > 0.5
        assert 0.0 <= crop.min() and crop.max() <= 1.0
        outside = crop[crop_weight <= 0.5]
        assert len(outside) == 0 or np.ptp(outside, axis=0).max() < 1e-6  # one fill colour outside


# ------------------------------------------------------------------------ inpainting


def test_inpainting_removes_a_planted_object():
    clean, _, _ = pool_scene(np.random.default_rng(0))
    dirty = clean.copy()
    dirty[20:26, 20:34] = [0.37, 0.25, 0.2]
    painted = inpaint_boxes(dirty, [[20, 20, 34, 26]])
    area = (slice(18, 28), slice(18, 36))
    assert np.abs(painted - clean)[area].mean() < 0.5 * np.abs(dirty - clean)[area].mean()
    outside = np.ones(clean.shape[:2], bool)
    outside[18:28, 18:36] = False  # the box plus the default 2-pixel margin
    assert painted.dtype == np.float32 and np.array_equal(painted[outside], dirty[outside])
    as_bytes = inpaint_boxes(np.round(dirty * 255).astype(np.uint8), np.array([[20, 20, 34, 26, 0.9]]))
    assert as_bytes.dtype == np.uint8 and np.abs(as_bytes / 255.0 - painted).max() <= 1 / 255 + 1e-6
    assert np.array_equal(inpaint_boxes(dirty[:, :, 0], np.zeros((0, 4))), dirty[:, :, 0])
    with pytest.raises(ValueError, match="unknown method"):
        inpaint_boxes(dirty, [[0, 0, 1, 1]], method="magic")


def test_cae_fixed_threshold_refuses_normalised_maps(blobs):
    with pytest.raises(ValueError, match="threshold_rule='fixed'"):
        CAE("cpu", device="cpu", threshold_rule="fixed", scoring={"normalise_positions": True}).fit(blobs["train"])


# ------------------------------------------------------------------------ video models


@pytest.mark.parametrize("name", ["stae", "convlstm"])
def test_fast_objects_score_higher_than_normal_frames(name, clips, request):
    model = request.getfixturevalue(name)
    scores = model.clip_scores(clips["test"])
    assert frame_auc(scores, clips["labels"]) >= 0.8
    prediction = model.predict(clips["test"])
    assert np.allclose(prediction.scores, np.concatenate(scores))
    items = list(model.predict_iter(clips["test"]))  # one clip at a time, one result per frame
    assert [item.name for item in items[59:61]] == ["clip_0_00059", "clip_1_00000"]
    assert np.array_equal(np.stack([item.anomaly_map for item in items]), prediction.anomaly_maps)
    assert np.allclose([item.score for item in items], prediction.scores)


@pytest.mark.parametrize("name", ["stae", "convlstm"])
def test_one_output_per_frame_in_frame_order(name, clips, request):
    model = request.getfixturevalue(name)
    normal = clips["train"][0]
    for length in (1, 4, 10, 17):
        for flash in sorted({0, length // 2, length - 1}):
            clip = normal[:length].copy()
            clip[flash, 4:20, 8:32] = 1.0  # a bright flash on one frame only
            prediction = model.predict(clip)
            assert len(prediction) == length and prediction.anomaly_maps.shape == (length, 24, 40)
            assert len(prediction.boxes) == length and prediction.masks.shape == (length, 24, 40)
            assert int(np.argmax(prediction.scores)) == flash
            assert prediction.anomaly_maps[flash][4:20, 8:32].mean() > prediction.anomaly_maps[flash].mean()


def test_clips_are_concatenated_in_input_order(stae, clips):
    first, second = clips["test"][0][:13], clips["train"][1][:7]
    together = stae.predict([first, second])
    assert len(together) == 20
    np.testing.assert_allclose(together.scores[:13], stae.predict(first).scores, rtol=1e-5)
    np.testing.assert_allclose(together.scores[13:], stae.predict(second).scores, rtol=1e-5)


def test_clip_inputs_folders_arrays_and_colour(stae, clips, tmp_path):
    clip = clips["test"][0][:12]
    for index, frame in enumerate(clip):
        cv2.imwrite(str(tmp_path / f"{index}.png"), np.round(frame * 255).astype(np.uint8))
    from_folder = stae.predict(tmp_path).scores
    from_bytes = stae.predict(np.round(clip * 255).astype(np.uint8)).scores
    from_colour = stae.predict([np.repeat(np.round(clip * 255).astype(np.uint8)[..., None], 3, axis=3)]).scores
    np.testing.assert_allclose(from_folder, from_bytes, rtol=1e-5)
    np.testing.assert_allclose(from_colour, from_bytes, rtol=1e-4)
    with pytest.raises(ValueError, match="single frame is a clip of one frame"):
        stae.predict(clip[0][:, :, None])
    with pytest.raises(TypeError, match="only folders, only lists of frame files or only arrays"):
        stae.predict([tmp_path, clip])


def test_regularity_is_the_metrics_definition(convlstm, clips):
    errors = convlstm.clip_scores(clips["test"])
    regularity = convlstm.regularity(clips["test"])
    assert len(regularity) == 2
    for e, r in zip(errors, regularity):
        np.testing.assert_allclose(r, regularity_score(e))


def test_single_training_clip_holds_out_its_tail():
    clip, _ = walkers(np.random.default_rng(1), 30)
    model = STAE("cpu", image_size=83, channels=(4, 4, 4), epochs=1, device="cpu")
    assert model._split(ClipDataset(clip))[1][0].shape[0] == 6
    model.fit(clip)
    assert model.score_stats_["images"] == 6 and model.score_stats_["frame_score_max"] > 0
    with pytest.raises(ValueError, match="fewer than window=10 remain"):
        STAE("cpu", device="cpu").fit(clip[:11])


@pytest.mark.parametrize("kernel, stride", [(15, 4), (3, 2), (4, 4), (5, 1), (2, 3)])
def test_sub_pixel_form_equals_the_transposed_convolution(kernel, stride):
    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose2d(3, 2, kernel, stride=stride)
    inputs = torch.rand(2, 3, 7, 9)
    with torch.no_grad():
        expected, got = layer(inputs), SubPixelTransposedConv(layer)(inputs)
    assert got.shape == expected.shape == (2, 2, 6 * stride + kernel, 8 * stride + kernel)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="not a square, unpadded"):
        SubPixelTransposedConv(torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1))


def test_stepwise_convlstm_runs(clips):
    model = ConvLSTMAE("cpu", temporal="stepwise", image_size=27, epochs=1, windows_per_epoch=16, device="cpu")
    assert len(model.fit(clips["train"]).predict(clips["test"][0][:5])) == 5


def test_video_configuration_errors(clips):
    with pytest.raises(ValueError, match=r"16k \+ 19 and at least 83, got 90; nearest valid: 83 or 99"):
        STAE("cpu", image_size=90).fit(clips["train"])
    with pytest.raises(ValueError, match="8k \\+ 3"):
        ConvLSTMAE("cpu", image_size=60).fit(clips["train"])
    with pytest.raises(ValueError, match="temporal must be"):
        ConvLSTMAE("cpu", temporal="backwards").fit(clips["train"])
    with pytest.raises(ValueError, match="unknown preset"):
        STAE("gpu").fit(clips["train"])


# ------------------------------------------------------------------------ input checks


def test_pool_ae_threshold_counts_only_pixels_inside_the_region(pool):
    from dfr.scoring import fit_threshold

    images, regions = [image for image, _, _ in pool["train"]], [region for _, region, _ in pool["train"]]
    model = PoolAE("cpu", width=None, channels=(4, 4, 4, 4), crop_size=32, epochs=1, device="cpu")
    model.fit(images[:8], region_masks=regions[:8], validation=images[8:], validation_region_masks=regions[8:])
    maps = model.anomaly_map(images[8:], region_masks=regions[8:])
    assert model.threshold_ == fit_threshold([m[r] for m, r in zip(maps, regions[8:])], model.scoring.target_fpr)
    assert model.score_stats_["pixel_median"] > 0  # not the zeros outside the region


def test_region_masks_any_channel_and_empty_masks(pool_ae, pool, tmp_path):
    image, region, _ = pool["test"][0]
    green = np.zeros((*region.shape, 3), np.uint8)
    green[region, 1] = 255
    cv2.imwrite(str(tmp_path / "green.png"), green)
    reference = pool_ae.anomaly_map(image, region_masks=region)
    assert np.array_equal(pool_ae.anomaly_map(image, region_masks=[tmp_path / "green.png"]), reference)
    with pytest.raises(ValueError, match="shared region mask is empty"):
        pool_ae.predict(image, region_masks=np.zeros_like(region))


def test_windows_must_cover_every_frame(clips):
    with pytest.raises(ValueError, match="test_hop must lie in 1 … window .*window=10"):
        STAE("cpu", test_hop=11).fit(clips["train"])


def test_inpainting_ignores_boxes_outside_the_image():
    image = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    assert np.array_equal(inpaint_boxes(image, [[-40, -40, -10, -10], [35, 5, 50, 9]]), image)


def test_pool_ae_cpu_preset_trains_a_fixed_number_of_steps(pool, monkeypatch):
    import baselines.pool

    monkeypatch.setattr(baselines.pool, "TRAINING_STEPS", 10)
    model = _pool_model(pool, epochs=None, crops_per_image=2, batch_size=4)
    # 12 images x 2 crops / batches of 4 = 6 steps per epoch: 2 epochs give the 10 steps
    assert PoolAE("cpu").settings()["epochs"] == "auto" and len(model.training_loss_) == 2
    with pytest.raises(ValueError, match="epochs must be a positive integer or 'auto', got 'many'"):
        _pool_model(pool, epochs="many")
