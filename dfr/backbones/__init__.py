"""Frozen feature extractors with named intermediate outputs."""
from dfr.backbones.vgg import VGG19, vgg19

__all__ = ["VGG19", "vgg19"]
