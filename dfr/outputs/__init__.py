"""Outputs: prediction folders (:mod:`~dfr.outputs.writer`), pictures (:mod:`~dfr.outputs.pictures`)
and the safe-writing helpers every writer uses (:mod:`~dfr.outputs.files`)."""
from dfr.outputs.files import (
           atomic_path,
           check_output_folder,
           output_lock,
           replace_folder,
           staged_folder,
           unique_stems,
)
from dfr.outputs.pictures import colourise, overlay, write_clip_video
from dfr.outputs.writer import PredictionWriter, write_clip_videos, write_prediction

__all__ = ["PredictionWriter", "atomic_path", "check_output_folder", "colourise", "output_lock", "overlay",
           "replace_folder", "staged_folder", "unique_stems", "write_clip_video", "write_clip_videos",
           "write_prediction"]
