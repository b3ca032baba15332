"""Rectangular network inputs and tiles of large images, for every model with a fixed network input."""
import warnings

import numpy as np
import pytest

import dfr
from dfr.api import persistence
from dfr.api.tiled import AUTO_SCALE, TiledModel
from dfr.cli.arguments import parse_value
from dfr.data.synthetic import texture
from dfr.data.tiles import MapBlender, as_size, axis_starts, blended_map, tile_grid
from tests.conftest import TINY

TILED = [name for name in dfr.list_models() if issubclass(dfr.model_info(name).model_class, TiledModel)]


def _model(name, **changes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random backbone weights
        return dfr.create_model(name, **{**TINY[name], "seed": 0, "device": "cpu", **changes})


def _fit(model, images):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(images)


@pytest.fixture(scope="module")
def wood():
    """Crops of 96 x 160 of the procedural wood texture: 10 for training, 2 for testing."""
    source = texture("wood")
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(12):
        top, left = rng.integers(0, 512 - 96), rng.integers(0, 512 - 160)
        crops.append(source[top:top + 96, left:left + 160].copy())
    return crops[:10], crops[10:]


def test_the_tiled_models_are_the_fixed_input_image_models():
    assert set(TILED) == {"dfr", "pca-residual", "memory-bank", "cae"}


def test_sizes_are_read_from_ints_pairs_and_text():
    assert as_size(256) == (256, 256) and as_size((360, 640)) == (360, 640) and as_size("360x640") == (360, 640)
    assert parse_value("360x640", int | tuple[int, int]) == [360, 640]
    assert parse_value("auto", int | tuple[int, int] | str | None) == "auto"
    with pytest.raises(ValueError, match="HxW"):
        as_size("360 by 640")


def test_tiles_cover_the_image_evenly_with_at_least_the_overlap():
    # 1600 px in tiles of 256 overlapping by 32: (1600 - 32) / 224 = 7 tiles, 224 apart
    assert axis_starts(1600, 256, 32) == [0, 224, 448, 672, 896, 1120, 1344]
    assert axis_starts(900, 256, 32) == [0, 215, 429, 644]  # 4 tiles spread evenly: overlap 41 or 42
    assert axis_starts(200, 256, 32) == [0]
    boxes = tile_grid(900, 1600, (256, 256), (32, 32))
    assert len(boxes) == 28 and boxes[-1] == (644, 1344, 256, 256)
    assert tile_grid(200, 300, (256, 256), (32, 32)) == [(0, 0, 200, 256), (0, 44, 200, 256)]


def test_blending_the_crops_of_one_map_gives_that_map_back():
    rng = np.random.default_rng(0)
    whole = rng.random((300, 500)).astype(np.float32)
    boxes = tile_grid(300, 500, (128, 128), (16, 16))
    got = blended_map(whole, boxes, (16, 16), lambda crops: [crop.copy() for crop in crops], batch=3)
    np.testing.assert_allclose(got, whole, rtol=1e-5)
    blender = MapBlender(10, 10, (4, 4))
    blender.add((0, 0, 10, 10), np.full((10, 10), 2.0, np.float32))
    np.testing.assert_allclose(blender.result(), 2.0)  # one tile alone: its map, border weights cancel


@pytest.mark.parametrize("name", TILED)
def test_auto_tiles_only_images_much_larger_than_the_network_input(name):
    model = _model(name, tile_size="auto")
    height, width = model.network_size()
    assert model.tiles(int(AUTO_SCALE * height), int(AUTO_SCALE * width)) is None
    assert len(model.tiles(int(AUTO_SCALE * height) + 1, width)) == 3
    assert _model(name, tile_size=None).tiles(100 * height, 100 * width) is None


@pytest.mark.parametrize("name", TILED)
def test_a_tiled_fit_and_predict_of_an_image_equal_to_one_tile_gives_the_untiled_maps(name, wood):
    train, test = ([crop[:64, :96] for crop in part] for part in wood)
    plain = _fit(_model(name, image_size=(64, 96), tile_size=None), train)
    tiled = _fit(_model(name, image_size=(64, 96), tile_size=(64, 96)), train)
    assert tiled.tiles(64, 96) == [(0, 0, 64, 96)]
    assert tiled.threshold_ == pytest.approx(plain.threshold_, rel=1e-5)
    np.testing.assert_allclose(tiled.anomaly_map(test), plain.anomaly_map(test), rtol=1e-4,
                               atol=1e-5 * plain.score_stats_["pixel_q99"])


def _seam_ratio(anomaly_map):
    """Largest jump of the map between neighbouring columns over the median jump: a seam at a
    tile border is a column where the map jumps."""
    jumps = np.abs(np.diff(anomaly_map, axis=1)).mean(axis=0)
    return jumps.max() / np.median(jumps)


def test_a_defect_across_a_tile_border_and_on_a_corner_is_found_without_seams():
    source = texture("leather")
    rng = np.random.default_rng(1)
    train = [source[top:top + 96, left:left + 176] for top, left in rng.integers(0, 300, (10, 2))]
    model = _fit(_model("dfr", image_size=32, tile_size=32, tile_overlap=0.25,
                              scoring={"smoothing_sigma": 0.0}), train)
    image = source[400:496, 300:476].copy()
    boxes = model.tiles(96, 176)
    starts = sorted({left for _, left, _, _ in boxes})
    assert len(starts) > 3
    border = starts[2] + 4  # inside the overlap of the second and third tile columns
    defects = np.zeros(image.shape, bool)
    defects[40:52, border - 6:border + 6] = True  # across the border between two tiles
    defects[0:10, 166:176] = True  # on the image's (and a tile's) corner
    image[defects] = 0.05
    prediction = model.predict(image[None])
    anomaly_map = prediction.anomaly_maps[0]
    for rows, columns in ((slice(40, 52), slice(border - 6, border + 6)), (slice(0, 10), slice(166, 176))):
        assert anomaly_map[rows, columns].max() > model.threshold_
    assert prediction.masks[0][defects].mean() > 0.5
    assert prediction.masks[0][~defects].mean() < 0.1
    normal = source[300:396, 20:196][None]
    assert _seam_ratio(model.anomaly_map(normal)[0]) < 3.0
    # the same tiles cut without overlap: the borders show
    hard = _fit(_model("dfr", image_size=32, tile_size=32, tile_overlap=0.0, scoring={"smoothing_sigma": 0.0}), train)
    assert _seam_ratio(hard.anomaly_map(normal)[0]) > 4.0


@pytest.mark.parametrize("name", TILED)
def test_a_rectangular_tiled_model_saves_loads_and_exports_with_the_same_maps(name, wood, tmp_path):
    pytest.importorskip("onnxruntime")
    train, test = wood
    model = _fit(_model(name, image_size=(32, 48), tile_size="auto", tile_overlap=0.25), train)
    assert len(model.tiles(96, 160)) > 1
    expected = model.predict(test)
    model.save(tmp_path / "model.dfr")
    loaded = dfr.load(tmp_path / "model.dfr")
    assert loaded.tile_size == "auto" and as_size(loaded.image_size) == (32, 48)
    np.testing.assert_array_equal(loaded.predict(test).anomaly_maps, expected.anomaly_maps)
    exported = dfr.load(model.export_onnx(tmp_path / "model.onnx"))
    spec = model.input_spec()
    assert spec["shape"][2:] == [32, 48] and spec["tiling"]["tile_size"] == [32, 48]
    got = exported.predict(test)
    np.testing.assert_allclose(got.anomaly_maps, expected.anomaly_maps, rtol=1e-3,
                               atol=1e-4 * model.score_stats_["pixel_q99"])


@pytest.mark.parametrize("name", ["dfr", "cae"])
def test_predict_iter_and_stream_tile_as_predict_does(name, wood):
    train, test = wood
    model = _fit(_model(name, image_size=32, tile_size=32), train)
    expected = model.predict(test).anomaly_maps
    np.testing.assert_array_equal(np.stack([item.anomaly_map for item in model.predict_iter(test, batch_size=1)]),
                                  expected)
    np.testing.assert_array_equal(np.stack([item.anomaly_map for item in model.stream(iter(test))]), expected)


def test_model_files_written_before_tiling_load_untiled(wood, tmp_path):
    train, _ = wood
    model = _fit(_model("dfr", tile_size="auto"), train)
    model.save(tmp_path / "new.dfr")
    record = persistence.read_model_file(tmp_path / "new.dfr")
    del record["params"]["tile_size"]  # as dfr wrote it before tile_size existed
    persistence.write_model_file(tmp_path / "old.dfr", {key: value for key, value in record.items()
                                                        if key not in persistence.RESERVED_KEYS})
    assert dfr.load(tmp_path / "old.dfr").tile_size is None


@pytest.mark.parametrize("value, message", [((30, 64), "multiple of 4"), ("64 by 32", "pair"), ((64, 64, 3), "pair")])
def test_bad_image_sizes_are_refused_with_the_reason(value, message, wood):
    with pytest.raises(ValueError, match=message):
        _fit(_model("dfr", image_size=value), wood[0])


def test_bad_tile_settings_are_refused(wood):
    with pytest.raises(ValueError, match="tile_size"):
        _fit(_model("dfr", tile_size=8), wood[0])
    with pytest.raises(ValueError, match="tile_overlap"):
        _fit(_model("dfr", tile_overlap=0.5), wood[0])


@pytest.mark.filterwarnings("ignore:VGG19 with random weights")
def test_the_command_line_takes_rectangular_sizes_and_tiles(wood, tmp_path):
    import cv2

    from dfr.cli import main

    train, test = wood
    for name, images in (("train", train), ("test", test)):
        (tmp_path / name).mkdir()
        for index, image in enumerate(images):
            cv2.imwrite(str(tmp_path / name / f"{index}.png"), (image * 255).astype(np.uint8))
    model_path = tmp_path / "head.dfr"
    assert main(["fit", "--model", "pca-residual", "--weights", "random", "--layers", "relu1_2,relu2_2",
                 "--image-size", "32x48", "--tile-size", "auto", "--train", str(tmp_path / "train"),
                 "--out", str(model_path)]) == 0
    model = dfr.load(model_path)
    assert model.network_size() == (32, 48) and len(model.tiles(96, 160)) == 16
    assert main(["predict", str(model_path), str(tmp_path / "test"), "--out", str(tmp_path / "out")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "out" / "maps" / "0.npy"),
                               model.anomaly_map(tmp_path / "test")[0], rtol=1e-5, atol=1e-6)
