"""Frozen feature extractors with named intermediate outputs.

Every backbone follows one protocol (see :class:`dfr.backbones.vgg.VGG19`): an ``nn.Module``
in eval mode with ``mean`` and ``std`` (input normalisation, RGB in [0, 1]),
``default_layers``, ``layer_channels(layers)``, ``forward_features(x, layers) -> {name:
(N, C, h, w)}``, and ``weights_state(layers)`` / ``load_weights_state(state, layers)`` so a
model file can carry the backbone weights it needs.
"""
from __future__ import annotations

import os

from torch import nn

from dfr.backbones.vgg import VGG19, vgg19

__all__ = ["VGG19", "build_backbone", "vgg19"]


def build_backbone(
    name: str, weights: str | os.PathLike | None, *, reflect_padding: bool = True, seed: int = 0, warn: bool = True
) -> nn.Module:
    """A frozen backbone by name: ``"vgg19"`` (plain torch, the default) or ``"timm:<model name>"``.

    timm backbones need ``pip install 'dfr[timm]'`` and are imported only here; they ignore
    ``reflect_padding`` (a VGG19 option). See :func:`dfr.backbones.timm_backbone.timm_backbone`.
    """
    if name == "vgg19":
        return vgg19(weights, reflect_padding=reflect_padding, seed=seed, warn=warn)
    if name.startswith("timm:"):
        from dfr.backbones.timm_backbone import timm_backbone

        return timm_backbone(name.removeprefix("timm:"), weights, seed=seed, warn=warn)
    raise ValueError(f"unknown backbone {name!r}; available: 'vgg19', 'timm:<timm model name>'")
