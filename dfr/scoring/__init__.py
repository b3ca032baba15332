"""Scoring shared by all models: map smoothing, pixel threshold, image scores, masks, boxes, heatmap scale.

Every model takes one :class:`ScoringSettings` (``scoring=``): how its maps are post-processed
and turned into scores, masks and boxes. The settings are stored in the model file.

For fixed cameras, ``normalise_positions`` divides every map by the normal level of the map at
each position (:func:`position_scale`), so that places that never reconstruct well (lane
ropes, edges) do not outshine the objects.

From map to boxes (:func:`detect`), the one box pipeline of every model: the smoothed map is
restricted to an optional region of interest, thresholded at the fitted threshold, cleaned by
a morphological opening and closing, kept by hysteresis (only components holding a seed above
a higher level), cut back to each component's pixels near its own peak, cut into
8-connected components of a minimum area,
boxed, and the boxes that overlap or nearly touch are merged, then non-maximum suppressed.
"""
from dfr.scoring.boxes import (
    boxes_from_mask,
    component_peaks,
    detect,
    detection_mask,
    merge_boxes,
    non_maximum_suppression,
)
from dfr.scoring.maps import (
    fit_threshold,
    heatmap_range,
    image_score,
    image_scores,
    normalise_positions,
    position_scale,
    position_sums,
    scale_from_sums,
    score_statistics,
    smooth,
)
from dfr.scoring.settings import AFTER_FIT, IMAGE_SCORES, ScoringSettings

__all__ = ["AFTER_FIT", "IMAGE_SCORES", "ScoringSettings", "boxes_from_mask", "component_peaks", "detect",
           "detection_mask", "fit_threshold", "heatmap_range", "image_score", "image_scores", "merge_boxes",
           "non_maximum_suppression", "normalise_positions", "position_scale", "position_sums", "scale_from_sums",
           "score_statistics", "smooth"]
