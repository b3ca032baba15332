"""Raw-pixel autoencoder baselines under the shared :class:`dfr.AnomalyModel` API.

- :class:`CAE`: single gray frames, convolutional autoencoder with a dense bottleneck.
- :class:`STAE`: T consecutive frames stacked as channels.
- :class:`ConvLSTMAE`: per-frame conv encoder, ConvLSTM temporal encoder-decoder.
- :class:`PoolAE`: fully convolutional, trained and scored inside a region mask.
- :func:`inpaint_boxes`: paint annotated objects out of training images.

Every model takes ``preset="source"`` (the source notebooks' sizes; the default) or
``preset="cpu"`` (small enough to train on demo-sized data on a CPU). See docs/baselines.md.
"""
from baselines.cae import CAE
from baselines.convlstm import ConvLSTMAE
from baselines.inpaint import inpaint_boxes
from baselines.pool import PoolAE
from baselines.stae import STAE

__all__ = ["CAE", "ConvLSTMAE", "PoolAE", "STAE", "inpaint_boxes"]
