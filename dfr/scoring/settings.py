"""How a model turns raw anomaly maps into maps, scores, masks and boxes: :class:`ScoringSettings`."""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from dfr.api import params

IMAGE_SCORES = ("max", "mean", "top_mean")
_FRACTION = params.interval(0, 1, high_open=True)
#: What each setting may be (:mod:`dfr.api.params`).
RULES = {
    "target_fpr": params.interval(0, 1, low_open=True, high_open=True),
    "validation_fraction": params.interval(0, 1, low_open=True, high_open=True),
    "smoothing_sigma": params.non_negative,
    "normalise_positions": params.boolean,
    "image_score": params.literal(*IMAGE_SCORES),
    "top_fraction": params.interval(0, 1, low_open=True),
    "seed_ratio": params.Rule(lambda v: params.non_negative(v) and v >= 1, "a number >= 1 (1: no hysteresis)"),
    "opening": _FRACTION,
    "closing": _FRACTION,
    "peak_fraction": params.Rule(_FRACTION, "a number in [0, 1) (0: no peak cut)"),
    "min_box_area": _FRACTION,
    "merge_gap": params.one_of(_FRACTION, None),
    "nms_iou": params.Rule(params.interval(0, 1, low_open=True), "a number in (0, 1] (1: no suppression)"),
}


@dataclass(frozen=True)
class ScoringSettings:
    """How a model turns raw anomaly maps into maps, scores, masks and boxes.

    Args:
        target_fpr: fraction of held-out normal pixels allowed above the pixel threshold.
        validation_fraction: share of the training data held out for the threshold when
            ``fit`` gets no ``validation=``.
        smoothing_sigma: standard deviation, in pixels of the input image, of the Gaussian
            applied to every map before anything else; 0 turns smoothing off.
        normalise_positions: divide every smoothed map by the normal level at each position,
            the mean of the training images' own maps (:func:`position_scale`); for fixed
            cameras, where some places (lane ropes, edges) always reconstruct worse than
            others. Costs one more pass over the training images in ``fit``; training images
            must share one size.
        image_score: ``"max"`` (the map maximum), ``"mean"`` (the map mean) or ``"top_mean"``
            (the mean of the ``top_fraction`` highest pixels) of the smoothed map. Video
            models keep their own frame score.
        top_fraction: share of pixels averaged by ``"top_mean"``, in (0, 1].
        seed_ratio: hysteresis: a mask component is kept only if some pixel in it exceeds
            ``median + seed_ratio * (threshold - median)`` (median of held-out normal pixels);
            1 keeps every component.
        opening, closing: diameters of the disks of a morphological opening (removes specks
            and thin lines) and then closing (joins nearby fragments) of the mask, as a
            fraction of the image's shorter side (rounded up to an odd number of pixels);
            below 2 pixels the step is skipped.
        peak_fraction: each component is cut back to its pixels above ``median + peak_fraction
            * (peak - median)``, its own peak's level (which can split it in two); boxes then
            follow the object, not the blur around it. 0 keeps the component whole.
        min_box_area: smallest connected component that becomes a box, as a fraction of the
            image's area (at least one pixel).
        merge_gap: boxes that overlap or lie at most this far apart (fraction of the shorter
            side, along both axes) merge into their union, repeatedly; ``None`` never merges.
        nms_iou: non-maximum suppression: a box whose IoU with a higher-scoring box exceeds
            this is dropped; 1 keeps all.

    Settings from ``seed_ratio`` on (the box settings) and ``image_score``/``top_fraction``
    may be changed after fitting (``predict(..., scoring={...})``); the others fix the
    threshold and need a refit.
    """

    target_fpr: float = 0.005
    validation_fraction: float = 0.2
    smoothing_sigma: float = 4.0
    normalise_positions: bool = False
    image_score: str = "top_mean"
    top_fraction: float = 0.01
    seed_ratio: float = 2.0
    opening: float = 0.0
    closing: float = 0.01
    peak_fraction: float = 0.5
    min_box_area: float = 0.0005
    merge_gap: float | None = 0.01
    nms_iou: float = 0.5

    def __post_init__(self) -> None:
        params.check("ScoringSettings", {field.name: getattr(self, field.name) for field in dataclasses.fields(self)},
                     RULES)

    @classmethod
    def coerce(cls, value: "ScoringSettings | dict[str, Any] | None") -> "ScoringSettings":
        """``value`` itself, the defaults for ``None``, or the settings a dict of fields names."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown scoring settings {unknown}; known: {sorted(cls.__dataclass_fields__)}")
            return cls(**value)
        raise TypeError(f"scoring must be a ScoringSettings, a dict or None, got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as stored in model files."""
        return asdict(self)

    def replace(self, changes: "ScoringSettings | dict[str, Any] | None") -> "ScoringSettings":
        """These settings with the fields in ``changes`` replaced; only the fields that
        :data:`AFTER_FIT` lists may change (the others fixed the fitted threshold)."""
        if changes is None:
            return self
        changes = changes.to_dict() if isinstance(changes, ScoringSettings) else dict(changes)
        changed = {name for name, value in changes.items() if getattr(self, name, object()) != value}
        fixed = sorted(changed - set(AFTER_FIT))
        if fixed:
            unknown = sorted(set(fixed) - set(self.__dataclass_fields__))
            if unknown:
                raise ValueError(f"unknown scoring settings {unknown}; known: {sorted(self.__dataclass_fields__)}")
            raise ValueError(f"scoring settings {fixed} were fixed when the threshold was fitted; refit to change "
                             f"them (after fitting only {list(AFTER_FIT)} may change)")
        return dataclasses.replace(self, **changes)


#: Scoring settings that may change after fitting: they do not enter the fitted threshold.
AFTER_FIT = ("image_score", "top_fraction", "seed_ratio", "opening", "closing", "peak_fraction", "min_box_area",
             "merge_gap", "nms_iou")
