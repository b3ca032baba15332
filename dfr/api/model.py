"""The shared model API: :class:`AnomalyModel`, base of DFR and every baseline."""
from __future__ import annotations

import inspect
import os
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

import numpy as np
import torch

from dfr import distributed, scoring
from dfr.api import params, persistence
from dfr.api.prediction import ItemPrediction, Prediction
from dfr.data.datasets import ImageDataset, chunks
from dfr.data.io import stack_if_same_size, to_float_image
from dfr.scoring import ScoringSettings, detect
from dfr.scoring.order_statistics import ValueStore

#: Images mapped at a time when ``fit`` maps held-out or training images.
MAP_CHUNK = 32


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class AnomalyModel:
    """Fit on normal data, then return anomaly maps, scores, masks and boxes.

    Subclasses implement four hooks and keep their constructor arguments as attributes of
    the same name (as scikit-learn estimators do), so configuration saves and loads itself:

    - ``_fit(items)`` trains on normal items (images (H, W, C) float32 in [0, 1]);
    - ``_maps(items)`` returns one float32 map (H, W) per image or frame, at input size;
    - ``_state()`` / ``_load_state(state)`` give and take the learned tensors and values.

    Inference is split so that its network part can run elsewhere: ``_maps`` prepares a batch
    of network inputs, passes it to :meth:`_run_network` (torch, or onnxruntime for a model
    loaded from an ONNX file, see :mod:`dfr.deploy.onnx`) and turns the result into maps at input
    size. ``_inference_network()`` is that network part as one module (network inputs → maps
    at network size), ``input_spec()`` describes its input (``shape`` with ``None`` for
    the free axes, ``layout``, ``normalisation``...) and ``output_layout`` its output;
    ``_restore_input_spec(spec)`` takes back what the pre-processing needs without the weights.

    ``_fit`` gets a lazy dataset (:class:`dfr.data.ImageDataset`: ``len``, indexing, read
    on access; ``_training_items`` may replace it, e.g. by the tiles of the images, see
    :class:`dfr.api.tiled.TiledModel`) and ``_maps`` a list of at most ``MAP_CHUNK`` items. Video models also
    override ``_dataset`` (clips instead of images), ``_split``, ``_map_chunks`` and ``_scores``.

    Shared scoring, set by ``scoring`` (a :class:`dfr.scoring.ScoringSettings`, a dict of its
    fields, or ``None`` for the defaults): every map is first smoothed with a Gaussian of
    ``smoothing_sigma`` pixels; ``fit`` then sets ``threshold_``, the pixel threshold at
    ``target_fpr`` on held-out normal maps (with ``normalise_positions``, maps are first
    divided by ``position_scale_``, the normal level per position fitted on the training
    images' maps; else it is ``None``); masks and boxes come from the one box pipeline,
    :func:`dfr.scoring.detect`; image scores follow ``image_score``.

    Image models take optional region masks (``region_masks=``, see
    :class:`dfr.data.ImageDataset`): maps are zero outside the region, the threshold is fitted
    on the pixels inside it, and nothing outside becomes a mask pixel or a box. A model whose
    network itself uses the regions (``fits_in_regions``, e.g. ``baselines.PoolAE``) also
    trains inside them.
    """

    #: What ``fit`` and ``predict`` take: ``"images"``, or ``"clips"`` (video models).
    input_kind: ClassVar[str] = "images"
    #: Whether ``fit`` and ``predict`` take ``region_masks=`` (image models).
    takes_region_masks: ClassVar[bool] = True
    #: Whether ``_fit`` and ``_maps`` get (image, region) pairs instead of images.
    fits_in_regions: ClassVar[bool] = False
    #: DataLoader worker processes that decode inputs ahead of the model (0: in this process);
    #: set it on a model (``model.workers = 4``) or with ``--workers``. Not saved.
    workers: int = 0
    #: The onnxruntime session that runs the network of a model loaded from an ONNX file.
    onnx_session_: Any = None
    #: Axes of the inference network's output.
    output_layout: ClassVar[str] = "NHW"
    #: Presets that ``preset=`` takes: name → values for the settings left as ``None`` (:meth:`settings`).
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: What each constructor argument or preset setting may be, and conditions on several
    #: (:mod:`dfr.api.params`); merged along the class hierarchy by :meth:`check_parameters`.
    PARAMETERS: ClassVar[dict[str, params.Rule]] = {}
    CONSTRAINTS: ClassVar[tuple[params.Constraint, ...]] = ()
    #: Benchmark layouts the model applies to (``dfr bench``, ``dfr demo``).
    datasets: ClassVar[tuple[str, ...]] = ("mvtec", "pool", "ucsd")

    def __init__(
        self,
        *,
        scoring: ScoringSettings | dict[str, Any] | None = None,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.scoring = ScoringSettings.coerce(scoring)
        self.seed = seed
        self.device = device

    # ----------------------------------------------------------------- public API

    def fit(
        self, data: Any, *, validation: Any = None, region_masks: Any = None, validation_region_masks: Any = None
    ) -> "AnomalyModel":
        """Train on normal ``data`` and fit the threshold on held-out normal data.

        Held-out data is ``validation`` when given, else a seeded ``validation_fraction``
        split of ``data``. ``region_masks`` / ``validation_region_masks``: regions of interest
        of ``data`` / ``validation`` (image models). Images are read as they are reached
        (:class:`dfr.data.ImageDataset`), so memory does not grow with their number. Under
        torch.distributed (``torchrun``) each process trains on its share and the threshold
        is fitted on all processes' held-out maps (docs/scaling.md). Returns ``self``.
        """
        if validation is None and validation_region_masks is not None:
            raise ValueError("validation_region_masks given without validation images")
        self._check_has_weights("fit")
        self.check_parameters()
        items = self._dataset(data, region_masks)
        if validation is None:
            train, held_out = self._split(items)
        else:
            train, held_out = items, self._dataset(validation, validation_region_masks)
        self.world_size_ = distributed.world_size()
        training_items = self._shard(self._training_items(train))
        train, held_out = self._shard(train), self._shard(held_out, required=False)
        if self.scoring.normalise_positions:
            self._check_one_size(train)
        self.device_ = distributed.local_device(resolve_device(self.device))
        self._fit(training_items.with_pairs(self.fits_in_regions))
        self.position_scale_ = None
        if self.scoring.normalise_positions:
            sums = None
            with distributed.together():
                for maps, regions in self._map_chunks(train):
                    sums = scoring.position_sums(maps, regions, sums)
            total, covered = (distributed.all_reduce(part, "sum") for part in sums)
            self.position_scale_ = scoring.scale_from_sums(total, covered)
        self._fit_scoring(held_out)
        return self

    def anomaly_map(self, data: Any, *, region_masks: Any = None) -> np.ndarray | list[np.ndarray]:
        """float32 anomaly maps: (N, H, W) when all inputs share a size, else a list of (H, W);
        zero outside ``region_masks`` when given."""
        maps, _ = self._predict_maps(data, region_masks)
        return stack_if_same_size(maps)

    def predict(
        self, data: Any, *, region_masks: Any = None, scoring: ScoringSettings | dict[str, Any] | None = None
    ) -> Prediction:
        """Maps, scores (by ``scoring.image_score`` unless the model has its own), masks and boxes.

        Masks and boxes come from :func:`dfr.scoring.detect` with the fitted threshold.
        ``scoring``: settings that replace the model's for this call; only those that do not
        enter the threshold may differ (:data:`dfr.scoring.AFTER_FIT`: the box settings and
        the image score).
        """
        self._check_fitted()
        return self._prediction(*self._predict_maps(data, region_masks), self.scoring.replace(scoring))

    def _prediction(self, maps: list[np.ndarray], regions: list[np.ndarray] | None, settings: ScoringSettings
                    ) -> Prediction:
        """Scores, masks and boxes of post-processed ``maps``."""
        floor = self.score_stats_["pixel_median"]
        detections = [
            detect(m, self.threshold_, settings, floor=floor, region=None if regions is None else regions[i])
            for i, m in enumerate(maps)
        ]
        return Prediction(
            anomaly_maps=stack_if_same_size(maps),
            scores=self._scores(maps, settings),
            masks=stack_if_same_size([mask for mask, _ in detections]),
            boxes=[boxes for _, boxes in detections],
            threshold=self.threshold_,
        )

    def predict_iter(
        self, data: Any, *, batch_size: int = 16, region_masks: Any = None,
        scoring: ScoringSettings | dict[str, Any] | None = None,
    ) -> Iterator[ItemPrediction]:
        """:meth:`predict`, one :class:`~dfr.api.prediction.ItemPrediction` per image (video
        models: per frame) at a time, in input order.

        Images are read ``batch_size`` at a time (video models: one clip at a time), so
        memory does not grow with the number of inputs; the results equal :meth:`predict`'s.
        ``data``, ``region_masks`` and ``scoring`` as for :meth:`predict`.
        """
        self._check_fitted()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.scoring.replace(scoring)  # refuse bad settings here, not at the first result
        return self._iter_predictions(data, region_masks, batch_size, scoring)

    def stream(self, frames: Iterable[np.ndarray], *, scoring: ScoringSettings | dict[str, Any] | None = None
               ) -> Iterator[ItemPrediction]:
        """One result per frame of ``frames`` as each arrives (a camera, a video being read):
        a generator of :class:`~dfr.api.prediction.ItemPrediction` named ``frame_<index>``.

        Frames are (H, W) or (H, W, C) arrays under the channel rule (uint8, or float in
        [0, 1]). Causal: a frame's result depends on it and, for video models, on the
        ``window - 1`` frames before it, never on later ones (:meth:`_stream_maps`).
        ``scoring`` as for :meth:`predict`.
        """
        self._check_fitted()
        settings = self.scoring.replace(scoring)
        history: deque[np.ndarray] = deque(maxlen=self._stream_history)
        for index, frame in enumerate(frames):
            image = to_float_image(np.asarray(frame))
            history.append(image)
            prediction = self._prediction(self._stream_maps(list(history)), None, settings)
            yield prediction.item(0, f"frame_{index:06d}", image)

    #: Frames that :meth:`_stream_maps` gets: the newest and those before it.
    _stream_history: ClassVar[int] = 1

    def _stream_maps(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """The post-processed map of the newest of ``frames`` (a list of one map)."""
        return self._postprocess(self._maps(self._network_input(frames[-1:], None)))

    def _iter_predictions(self, data: Any, region_masks: Any, batch_size: int, scoring: Any) -> Iterator[ItemPrediction]:
        for names, items, regions, images in self._batches(data, region_masks, batch_size):
            prediction = self.predict(items, region_masks=regions, scoring=scoring)
            for index, name in enumerate(names):
                yield prediction.item(index, name, images[index])

    @property
    def heatmap_range(self) -> tuple[float, float]:
        """Dataset-wide (low, high) for colouring maps: normal median to twice the threshold's distance."""
        self._check_fitted()
        return scoring.heatmap_range(self.score_stats_, self.threshold_)

    def settings(self) -> dict[str, Any]:
        """The settings of the chosen preset (``PRESETS[preset]``), each replaced by the constructor
        argument of the same name unless that is ``None``; empty for a model without presets."""
        if not self.PRESETS:
            return {}
        if self.preset not in self.PRESETS:
            raise ValueError(f"{type(self).__name__}: unknown preset {self.preset!r}; choose from {sorted(self.PRESETS)}")
        settings = dict(self.PRESETS[self.preset])
        settings.update({name: getattr(self, name) for name in settings if getattr(self, name) is not None})
        return settings

    def check_parameters(self) -> None:
        """Check the constructor arguments and preset settings against the ``PARAMETERS`` and
        ``CONSTRAINTS`` of the class and its bases (:mod:`dfr.api.params`); a ValueError names
        the first that fails. ``fit`` and ``load`` call it before building anything."""
        rules: dict[str, params.Rule] = {}
        constraints: list[params.Constraint] = []
        for klass in reversed(type(self).__mro__):
            rules.update(vars(klass).get("PARAMETERS", {}))
            constraints += vars(klass).get("CONSTRAINTS", ())
        params.check(type(self).__name__, {**self.get_params(), **self.settings()}, rules, constraints)

    @classmethod
    def parameters(cls, *, hints: bool = False) -> dict[str, inspect.Parameter]:
        """The constructor arguments of the class and its bases (the ``**`` arguments that a
        subclass passes on to its base are the base's own), by name; with ``hints``, their type
        hints evaluated (the command line parses values by them). Without ``hints`` no code is
        evaluated: an ``eval`` interrupted by Ctrl-C would make Python exit by SIGINT even
        after the command has handled the interruption."""
        found: dict[str, inspect.Parameter] = {}
        for klass in cls.__mro__:
            if "__init__" in vars(klass):
                for name, parameter in inspect.signature(klass.__init__, eval_str=hints).parameters.items():
                    if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                        found.setdefault(name, parameter)
        return found

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, read back from the attributes of the same name."""
        return {name: getattr(self, name) for name in self.parameters()}

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> None:
        """Write the model (weights, configuration, threshold, statistics) to one file, atomically
        (:mod:`dfr.api.persistence`).

        Under torch.distributed only rank 0 writes; every rank returns once the file is written
        (or raises its error)."""
        self._check_fitted()
        self._check_has_weights("save")
        error = None
        if distributed.is_main():
            try:
                persistence.write_model_file(path, {**persistence.model_record(self), "state": self._state()},
                                             overwrite=overwrite)
            except (OSError, ValueError) as caught:
                error = caught
        distributed.check_all(error)

    def export_onnx(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the fitted model as one ONNX graph, its inference network (network inputs → maps
        at network size, free batch axis), with the model-file record and the input spec in the
        metadata (:mod:`dfr.deploy.onnx`); ``dfr.load`` reads it back for onnxruntime. Returns the path."""
        from dfr.deploy import onnx

        self._check_fitted()
        self._check_has_weights("export")
        spec = self.input_spec()
        metadata = {**persistence.model_record(self, as_json=True), "input": {"name": "input", "dtype": "float32", **spec},
                    "output": {"name": "anomaly_map", "dtype": "float32", "layout": self.output_layout}}
        return onnx.write_onnx(self._inference_network(), spec["shape"], metadata, path, device=self.device_,
                               overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "auto") -> "AnomalyModel":
        """Load a model saved by :meth:`save`, on ``device`` (a GPU-fitted model loads on CPU).

        An ``.onnx`` file written by :meth:`export_onnx` loads as the same model class with
        its network in onnxruntime (:func:`dfr.deploy.onnx.read_onnx`): it predicts, but cannot
        be fitted or saved."""
        if str(path).lower().endswith(".onnx"):
            from dfr.deploy import onnx

            record, session = onnx.read_onnx(path)
            model = persistence.model_from_record(record, path, "cpu")
            model.device_ = torch.device("cpu")
            model._restore_input_spec(record["input"])
            model.onnx_session_ = session
        else:
            record = persistence.read_model_file(path)
            try:
                model = persistence.model_from_record(record, path, device)
                model.device_ = distributed.local_device(resolve_device(device))
                model.check_parameters()
                model._load_state(record["state"])
            except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
                if str(path) in str(error):
                    raise
                raise ValueError(f"{path}: the model file's contents do not fit its model class "
                                 f"({type(error).__name__}: {error}); it was not written by this dfr's save") from None
        if not isinstance(model, cls):
            raise TypeError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    # ----------------------------------------------------------------- hooks

    def _dataset(self, data: Any, region_masks: Any = None) -> ImageDataset:
        """The inputs as a lazy dataset (video models: of clips)."""
        if region_masks is not None and not self.takes_region_masks:
            raise ValueError(f"{type(self).__name__} takes no region masks (they are for image models)")
        return ImageDataset(data, region_masks)

    def _split(self, items: ImageDataset) -> tuple[ImageDataset, ImageDataset]:
        """Seeded split into (train, held-out) with ``validation_fraction`` held out."""
        if len(items) < 2:
            raise ValueError(
                f"need at least 2 training items to hold some out for the threshold, got {len(items)}; "
                "pass validation= with separate normal data"
            )
        held = min(len(items) - 1, max(1, round(self.scoring.validation_fraction * len(items))))
        order = np.random.default_rng(self.seed).permutation(len(items))
        return items.subset(np.sort(order[held:])), items.subset(np.sort(order[:held]))

    def _training_items(self, items: ImageDataset) -> Any:
        """What ``_fit`` trains on, made from the training items before they are shared among
        processes: the items themselves (:class:`dfr.api.tiled.TiledModel`: their tiles)."""
        return items

    def _fit(self, items: ImageDataset) -> None:
        raise NotImplementedError

    def _scores(self, maps: list[np.ndarray], settings: ScoringSettings | None = None) -> np.ndarray:
        """One score per item (N,) by ``(settings or scoring).image_score``; video models use their frame scores."""
        return scoring.image_scores(maps, settings or self.scoring)

    def _maps(self, items: list) -> list[np.ndarray]:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _inference_network(self) -> torch.nn.Module:
        raise NotImplementedError

    def input_spec(self) -> dict[str, Any]:
        """What the inference network takes: ``shape`` (``None`` for a free axis), ``layout``, ``channels``, ``range``, ``normalisation`` and how inputs are resized (stored with exported models)."""
        raise NotImplementedError

    def _restore_input_spec(self, spec: dict[str, Any]) -> None:
        """Take back from an exported input spec what pre-processing needs (default: nothing)."""

    # ----------------------------------------------------------------- helpers

    def _shard(self, items: ImageDataset, *, required: bool = True) -> ImageDataset:
        """This process's share of ``items`` under torch.distributed (all of them otherwise);
        every process must get one unless not ``required``."""
        if required and len(items) < distributed.world_size():
            raise ValueError(f"{len(items)} items cannot be shared among {distributed.world_size()} processes: "
                             "give at least one per process")
        return items.subset(distributed.shard(len(items)))

    def _network_input(self, items: list, regions: list[np.ndarray] | None) -> list:
        """What ``_fit`` and ``_maps`` get: the items, or (item, region) pairs for ``fits_in_regions`` models."""
        if not self.fits_in_regions:
            return items
        if regions is None:
            regions = [np.ones(item.shape[:2], dtype=bool) for item in items]
        return list(zip(items, regions))

    def _map_chunks(self, items: ImageDataset) -> Iterator[tuple[list[np.ndarray], list[np.ndarray] | None]]:
        """Post-processed maps and their regions, ``MAP_CHUNK`` images at a time (video models: a clip)."""
        for _, images, regions in chunks(items, MAP_CHUNK, workers=self.workers):
            yield self._postprocess(self._maps(self._network_input(images, regions)), regions), regions

    def _postprocess(self, maps: list[np.ndarray], regions: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Smooth every map in place (``scoring.smoothing_sigma``), divide it by the fitted
        ``position_scale_`` when there is one, then zero it outside its region; returns the same list."""
        for index, anomaly_map in enumerate(maps):
            smoothed = scoring.smooth(anomaly_map, self.scoring.smoothing_sigma)
            if self.position_scale_ is not None:
                smoothed = scoring.normalise_positions(smoothed, self.position_scale_)
            maps[index] = smoothed if regions is None else np.where(regions[index], smoothed, 0.0).astype(np.float32)
        return maps

    def _fit_scoring(self, held_out: ImageDataset) -> None:
        """Threshold and statistics over the held-out normal pixels inside their regions, read
        chunk by chunk (the pixels wait in a temporary file, not in memory; under
        torch.distributed, those of every process)."""
        scores = []
        with ValueStore() as pixels:
            with distributed.together():
                for maps, regions in self._map_chunks(held_out):
                    for index, anomaly_map in enumerate(maps):
                        pixels.append(anomaly_map if regions is None else anomaly_map[regions[index]])
                    scores.append(self._scores(maps))
            self.threshold_ = scoring.fit_threshold(pixels, self.scoring.target_fpr)
            local_scores = np.concatenate(scores) if scores else np.empty(0)
            self.score_stats_ = scoring.score_statistics(pixels, np.concatenate(distributed.all_gather(local_scores)))


    @contextmanager
    def _seeded(self) -> Iterator[np.random.Generator]:
        """Seed torch with ``seed`` (its global state restored afterwards) and yield a numpy generator seeded alike."""
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            yield np.random.default_rng(self.seed)

    def _predict_maps(self, data: Any, region_masks: Any = None) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        self._check_fitted()
        maps, regions = [], []
        for chunk_maps, chunk_regions in self._map_chunks(self._dataset(data, region_masks)):
            maps += chunk_maps
            regions += chunk_regions or []
        return maps, regions if region_masks is not None else None

    def _batches(self, data: Any, region_masks: Any, batch_size: int) -> Iterator[tuple[list[str], list, Any, list]]:
        """(names of the outputs, the items to predict, their region masks, the image of each
        output) per batch of ``batch_size`` images, read only when the batch is reached."""
        for names, images, regions in chunks(self._dataset(data, region_masks), batch_size, workers=self.workers):
            yield names, images, regions, images

    def _check_one_size(self, items: ImageDataset) -> None:
        """``normalise_positions`` needs one map size: refuse training items of several (on any
        process), before training."""
        with distributed.together():
            local = {items.size(index) for index in range(len(items))}
        sizes = sorted(set().union(*distributed.all_gather(local)))
        if len(sizes) > 1:
            raise ValueError(f"normalise_positions needs training images of one size (a fixed camera), got sizes {sizes}")

    def _run_network(self, batch: torch.Tensor) -> torch.Tensor:
        """The inference network on a batch of network inputs (on any device); float32 result
        on the CPU. A model loaded from an ONNX file runs it in onnxruntime."""
        if self.onnx_session_ is not None:
            from dfr.deploy.onnx import run_session

            return run_session(self.onnx_session_, batch)
        network = self._inference_network().eval()
        with torch.no_grad():
            return network(batch.to(self.device_)).float().cpu()

    def _check_has_weights(self, action: str) -> None:
        if self.onnx_session_ is not None:
            raise RuntimeError(f"this {type(self).__name__} was loaded from an ONNX file and can only predict; "
                               f"{action} needs the .dfr model file")

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({params})"


def load(path: str | os.PathLike, *, device: str = "auto") -> AnomalyModel:
    """Load any saved dfr model (``.dfr``, or ``.onnx`` for onnxruntime), whatever its class."""
    return AnomalyModel.load(path, device=device)
