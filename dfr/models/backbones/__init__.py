"""Frozen feature extractors with named intermediate outputs.

Every backbone follows one protocol (see :class:`dfr.models.backbones.vgg.VGG19`): an ``nn.Module``
in eval mode with ``mean`` and ``std`` (input normalisation, RGB in [0, 1]),
``default_layers``, ``layer_channels(layers)``, ``forward_features(x, layers) -> {name:
(N, C, h, w)}``, and ``weights_state(layers)`` / ``load_weights_state(state, layers)`` so a
model file can carry the backbone weights it needs.
"""
from __future__ import annotations

import os

from torch import nn

from dfr.models.backbones.vgg import VGG19, vgg19

__all__ = ["VGG19", "build_backbone", "check_official_border", "vgg19"]


def check_official_border(name: str, reflect_padding: bool, official_border: bool) -> None:
    """Raise a ValueError unless ``official_border`` is off or the backbone is VGG19 with reflection padding."""
    if official_border and (name != "vgg19" or not reflect_padding):
        raise ValueError(
            "official_border=True reproduces the official DFR code's VGG19 and needs backbone='vgg19' with "
            f"reflect_padding=True, got backbone={name!r}, reflect_padding={reflect_padding!r}"
        )


def build_backbone(
    name: str,
    weights: str | os.PathLike | None,
    *,
    reflect_padding: bool = True,
    official_border: bool = False,
    seed: int = 0,
    warn: bool = True,
) -> nn.Module:
    """A frozen backbone by name: ``"vgg19"`` (plain torch, the default) or ``"timm:<model name>"``.

    timm backbones need ``pip install 'dfr[timm]'`` and are imported only here; they ignore
    ``reflect_padding`` (a VGG19 option) and refuse ``official_border`` (see
    :func:`check_official_border`). See :func:`dfr.models.backbones.timm_backbone.timm_backbone`.
    """
    check_official_border(name, reflect_padding, official_border)
    if name == "vgg19":
        return vgg19(weights, reflect_padding=reflect_padding, official_border=official_border, seed=seed, warn=warn)
    if name.startswith("timm:"):
        from dfr.models.backbones.timm_backbone import timm_backbone

        return timm_backbone(name.removeprefix("timm:"), weights, seed=seed, warn=warn)
    raise ValueError(f"unknown backbone {name!r}; available: 'vgg19', 'timm:<timm model name>'")
