"""Baselines under the shared :class:`dfr.AnomalyModel` API: raw-pixel autoencoders and
feature-space peers of DFR on its own regional features.

- :class:`CAE`: single gray frames, convolutional autoencoder with a dense bottleneck.
- :class:`STAE`: T consecutive frames stacked as channels.
- :class:`ConvLSTMAE`: per-frame conv encoder, ConvLSTM temporal encoder-decoder.
- :class:`PoolAE`: fully convolutional, trained and scored inside a region mask.
- :func:`inpaint_boxes`: paint annotated objects out of training images.
- :class:`PCAResidual`: distance to the PCA subspace of DFR's features (DFR's linear counterpart).
- :class:`PatchMemoryBank`: nearest-neighbour distance to a coreset of DFR's features (PatchCore-style).

Every raw-pixel model takes ``preset="source"`` (the source notebooks' sizes; the default) or
``preset="cpu"`` (small enough to train on demo-sized data on a CPU). See docs/baselines.md.
"""
from baselines.cae import CAE
from baselines.convlstm import ConvLSTMAE
from baselines.memory_bank import PatchMemoryBank
from baselines.pca_residual import PCAResidual
from baselines.pool import PoolAE
from baselines.stae import STAE
from dfr.data.inpaint import inpaint_boxes

__all__ = ["CAE", "ConvLSTMAE", "PCAResidual", "PatchMemoryBank", "PoolAE", "STAE", "inpaint_boxes"]
