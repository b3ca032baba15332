"""The shared model API: :class:`AnomalyModel`, base of DFR and every baseline."""
from __future__ import annotations

import importlib
import inspect
import os
from contextlib import contextmanager
from typing import Any, ClassVar, Iterator

import numpy as np
import torch

from dfr import scoring
from dfr.io import load_images, stack_if_same_size
from dfr.prediction import Prediction
from dfr.scoring import ScoringSettings
from dfr.serialization import read_model_file, write_model_file

# Packages whose model classes ``dfr.load`` may import by name; nothing else is ever imported.
LOADABLE_PACKAGES = ("dfr", "baselines")

_REGISTRY: dict[str, type["AnomalyModel"]] = {}


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

    - ``_fit(items)`` trains on a list of normal items (images (H, W, C) float32 in [0, 1]);
    - ``_maps(items)`` returns one float32 map (H, W) per image or frame, at input size;
    - ``_state()`` / ``_load_state(state)`` give and take the learned tensors and values.

    Video models also override ``_read`` (clips instead of images), ``_split`` and ``_scores``.

    Shared scoring, set by ``scoring`` (a :class:`dfr.scoring.ScoringSettings`, a dict of its
    fields, or ``None`` for the defaults): every map is first smoothed with a Gaussian of
    ``smoothing_sigma`` pixels; ``fit`` then sets ``threshold_``, the pixel threshold at
    ``target_fpr`` on held-out normal maps; masks are ``map > threshold_``; boxes are the
    connected components of a mask with at least ``min_box_area`` pixels; image scores follow
    ``image_score``.
    """

    #: What ``fit`` and ``predict`` take: ``"images"``, or ``"clips"`` (video models).
    input_kind: ClassVar[str] = "images"
    #: Whether ``fit`` and ``predict`` also take ``region_masks=`` (see ``baselines.PoolAE``).
    takes_region_masks: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[f"{cls.__module__}.{cls.__qualname__}"] = cls

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

    def fit(self, data: Any, *, validation: Any = None) -> "AnomalyModel":
        """Train on normal ``data`` and fit the threshold on held-out normal data.

        Held-out data is ``validation`` when given, else a seeded ``validation_fraction``
        split of ``data``. Returns ``self``.
        """
        items = self._read(data)
        if validation is None:
            train, held_out = self._split(items)
        else:
            train, held_out = items, self._read(validation)
        self.device_ = resolve_device(self.device)
        self._fit(train)
        self._fit_scoring(self._postprocess(self._maps(held_out)))
        return self

    def anomaly_map(self, data: Any) -> np.ndarray | list[np.ndarray]:
        """float32 anomaly maps: (N, H, W) when all inputs share a size, else a list of (H, W)."""
        return stack_if_same_size(self._predict_maps(data))

    def predict(self, data: Any) -> Prediction:
        """Maps, scores (by ``scoring.image_score`` unless the model has its own), masks (``map > threshold_``) and boxes."""
        maps = self._predict_maps(data)
        masks = [m > self.threshold_ for m in maps]
        return Prediction(
            anomaly_maps=stack_if_same_size(maps),
            scores=self._scores(maps),
            masks=stack_if_same_size(masks),
            boxes=[scoring.boxes_from_mask(mask, m, self.scoring.min_box_area) for mask, m in zip(masks, maps)],
            threshold=self.threshold_,
        )

    @property
    def heatmap_range(self) -> tuple[float, float]:
        """Dataset-wide (low, high) for colouring maps: normal median to twice the threshold's distance."""
        self._check_fitted()
        return scoring.heatmap_range(self.score_stats_, self.threshold_)

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, read back from the attributes of the same name."""
        names = []
        for klass in type(self).__mro__:
            if "__init__" in vars(klass):
                for name, parameter in inspect.signature(klass.__init__).parameters.items():
                    if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                        names.append(name)
        return {name: getattr(self, name) for name in dict.fromkeys(names)}

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> None:
        """Write the model (weights, configuration, threshold, statistics) to one file, atomically."""
        self._check_fitted()
        from dfr import __version__

        params = {name: _plain(value) for name, value in self.get_params().items() if name != "device"}
        write_model_file(
            path,
            {
                "library_version": __version__,
                "model_class": f"{type(self).__module__}.{type(self).__qualname__}",
                "params": params,
                "state": self._state(),
                "scoring": {"threshold": self.threshold_, "stats": self.score_stats_},
            },
            overwrite=overwrite,
        )

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str = "auto") -> "AnomalyModel":
        """Load a model saved by :meth:`save`, on ``device`` (a GPU-fitted model loads on CPU)."""
        record = read_model_file(path)
        model_class = _model_class(record["model_class"], path)
        if not issubclass(model_class, cls):
            raise TypeError(f"{path}: holds a {model_class.__name__}, not a {cls.__name__}")
        model = model_class(**record["params"], device=device)
        model.device_ = resolve_device(device)
        model._load_state(record["state"])
        model.threshold_ = float(record["scoring"]["threshold"])
        model.score_stats_ = dict(record["scoring"]["stats"])
        return model

    # ----------------------------------------------------------------- hooks

    def _read(self, data: Any) -> list[np.ndarray]:
        images, _ = load_images(data)
        return images

    def _split(self, items: list) -> tuple[list, list]:
        """Seeded split into (train, held-out) with ``validation_fraction`` held out."""
        if len(items) < 2:
            raise ValueError(
                f"need at least 2 training items to hold some out for the threshold, got {len(items)}; "
                "pass validation= with separate normal data"
            )
        held = min(len(items) - 1, max(1, round(self.scoring.validation_fraction * len(items))))
        order = np.random.default_rng(self.seed).permutation(len(items))
        return [items[i] for i in sorted(order[held:])], [items[i] for i in sorted(order[:held])]

    def _fit(self, items: list) -> None:
        raise NotImplementedError

    def _scores(self, maps: list[np.ndarray]) -> np.ndarray:
        """One score per item (N,) by ``scoring.image_score``; video models use their frame scores."""
        return scoring.image_scores(maps, self.scoring)

    def _maps(self, items: list) -> list[np.ndarray]:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- helpers

    def _postprocess(self, maps: list[np.ndarray]) -> list[np.ndarray]:
        """Smooth every map in place (``scoring.smoothing_sigma``); returns the same list."""
        for index, anomaly_map in enumerate(maps):
            maps[index] = scoring.smooth(anomaly_map, self.scoring.smoothing_sigma)
        return maps

    def _fit_scoring(self, normal_maps: list[np.ndarray]) -> None:
        self.threshold_ = scoring.fit_threshold(normal_maps, self.scoring.target_fpr)
        self.score_stats_ = scoring.score_statistics(normal_maps, self._scores(normal_maps))

    def _preset_settings(self, presets: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """``presets[self.preset]``, each entry overridden by the attribute of the same name unless it is ``None``."""
        if self.preset not in presets:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {sorted(presets)}")
        settings = dict(presets[self.preset])
        settings.update({name: getattr(self, name) for name in settings if getattr(self, name) is not None})
        return settings

    @contextmanager
    def _seeded(self) -> Iterator[np.random.Generator]:
        """Seed torch with ``seed`` (its global state restored afterwards) and yield a numpy generator seeded alike."""
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            yield np.random.default_rng(self.seed)

    def _predict_maps(self, data: Any) -> list[np.ndarray]:
        self._check_fitted()
        return self._postprocess(self._maps(self._read(data)))

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    def __repr__(self) -> str:
        params = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({params})"


def _plain(value: Any) -> Any:
    """A constructor argument as a plain value for the model file."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, ScoringSettings):
        return value.to_dict()
    return value


def _model_class(name: str, path: str | os.PathLike) -> type[AnomalyModel]:
    if name not in _REGISTRY:
        module = name.rpartition(".")[0]
        if module.split(".")[0] not in LOADABLE_PACKAGES:
            raise ValueError(f"{path}: model class {name!r} is not a dfr or baselines model; import it before loading")
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ValueError(f"{path}: model class {name!r} is not available ({error})") from None
    if name not in _REGISTRY:
        raise ValueError(f"{path}: unknown model class {name!r}")
    return _REGISTRY[name]


def load(path: str | os.PathLike, *, device: str = "auto") -> AnomalyModel:
    """Load any saved dfr model, whatever its class."""
    return AnomalyModel.load(path, device=device)
