"""VGG19 in plain torch, with torchvision's parameter names and named intermediate outputs.

The parameter names (``features.0.weight`` … ``classifier.6.bias``) and shapes equal
torchvision's ``vgg19``, so torchvision's ImageNet checkpoint loads with ``strict=True``
without importing torchvision.
"""
from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Output channels of each conv, "M" for a 2x2 max pool (torchvision's configuration "E").
_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _relu_layers() -> tuple[dict[str, int], dict[str, int]]:
    """``relu<block>_<conv>`` → (its index inside ``features``, its channel count)."""
    indices, channels, block, conv, index = {}, {}, 1, 0, 0
    for item in _CONFIG:
        if item == "M":
            block, conv, index = block + 1, 0, index + 1
        else:
            conv += 1
            indices[f"relu{block}_{conv}"] = index + 1
            channels[f"relu{block}_{conv}"] = item
            index += 2
    return indices, channels


RELU_LAYERS, LAYER_CHANNELS = _relu_layers()
# The 12 layers of the DFR paper: relu1_1 … relu4_4, 3456 channels.
PAPER_LAYERS = tuple(name for name in RELU_LAYERS if not name.startswith("relu5"))


class VGG19(nn.Module):
    """VGG19 whose :meth:`forward_features` returns named ReLU outputs (``relu1_1`` … ``relu5_4``).

    It follows dfr's backbone protocol: ``mean``/``std`` of the input normalisation,
    ``default_layers``, ``layer_channels(layers)``, ``forward_features(x, layers)``, and
    ``weights_state(layers)`` / ``load_weights_state(state, layers)`` for model files.

    Args:
        reflect_padding: pad convolutions by reflection instead of zeros (as DFR's authors did);
            the parameters are the same either way.
        official_border: reproduce DFR's official code, which pads by separate reflection-pad
            layers and returns every ReLU output that a conv follows (``relu1_1``, ``relu2_1``,
            ``relu3_1`` … ``relu3_3``, …) with its 1-pixel reflection border still on (h + 2,
            w + 2); the last ReLU of each block is returned as is. Needs ``reflect_padding``.
        with_classifier: also build the ImageNet classifier head (only needed to hold a full
            torchvision checkpoint; feature extraction never uses it).
    """

    def __init__(
        self, *, reflect_padding: bool = False, official_border: bool = False, with_classifier: bool = False
    ) -> None:
        super().__init__()
        if official_border and not reflect_padding:
            raise ValueError("official_border=True needs reflect_padding=True (the official code pads by reflection)")
        self.official_border = official_border
        padding_mode = "reflect" if reflect_padding else "zeros"
        layers: list[nn.Module] = []
        in_channels = 3
        for item in _CONFIG:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_channels, item, 3, padding=1, padding_mode=padding_mode), nn.ReLU(inplace=True)]
                in_channels = item
        self.features = nn.Sequential(*layers)
        for module in self.features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        if with_classifier:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 1000),
            )

    mean = IMAGENET_MEAN
    std = IMAGENET_STD
    default_layers = PAPER_LAYERS

    def layer_channels(self, layers: Sequence[str]) -> list[int]:
        """Channels of each named layer; unknown or missing names raise a ValueError."""
        unknown = [name for name in layers if name not in RELU_LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG19 layers {list(unknown or layers)}; choose from {list(RELU_LAYERS)}")
        return [LAYER_CHANNELS[name] for name in layers]

    def forward_features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run ``x`` (N, 3, H, W), ImageNet-normalised, up to the deepest requested layer.

        Returns ``{layer name: activation (N, C, H / 2**(block-1), W / 2**(block-1))}``; with
        ``official_border``, a layer followed by a conv comes reflection-padded by 1 pixel (h + 2, w + 2).
        """
        self.layer_channels(layers)
        wanted = {RELU_LAYERS[name]: name for name in layers}
        outputs = {}
        for index, module in enumerate(self.features[: max(wanted) + 1]):
            x = module(x)
            if index in wanted:
                bordered = self.official_border and isinstance(self.features[index + 1], nn.Conv2d)
                outputs[wanted[index]] = F.pad(x, (1, 1, 1, 1), mode="reflect") if bordered else x
        return outputs


    def weights_state(self, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The ``features`` parameters needed to compute ``layers`` (deeper convs are left out)."""
        last = max(RELU_LAYERS[name] for name in layers)
        return {
            key: value.detach().cpu()
            for key, value in self.features.state_dict(prefix="features.").items()
            if int(key.split(".")[1]) < last
        }

    def load_weights_state(self, state: dict[str, torch.Tensor], layers: Sequence[str]) -> None:
        """Load what :meth:`weights_state` gave, checking that it covers ``layers`` exactly."""
        expected = self.weights_state(layers)
        if set(state) != set(expected) or any(state[k].shape != v.shape for k, v in expected.items()):
            raise ValueError("backbone weights in the model file do not match VGG19 up to the configured layers")
        self.load_state_dict(state, strict=False)


def vgg19(
    weights: str | os.PathLike | None,
    *,
    reflect_padding: bool = False,
    official_border: bool = False,
    seed: int = 0,
    warn: bool = True,
) -> VGG19:
    """A frozen VGG19 in eval mode.

    Args:
        weights: ``"imagenet"`` fetches torchvision's checkpoint with
            ``torch.hub.load_state_dict_from_url`` (hash-checked, cached in torch's hub folder);
            a path loads a local copy of that checkpoint; ``None`` gives seeded random weights,
            with a warning, for tests only.
        reflect_padding, official_border: see :class:`VGG19`.
        seed: seed of the random weights when ``weights`` is ``None``.
        warn: warn about random weights (off when the weights are loaded from a model file next).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VGG19(reflect_padding=reflect_padding, official_border=official_border)
    if weights is None and warn:
        warnings.warn(
            "VGG19 with random weights (weights=None): anomaly maps then only serve for testing; "
            "use weights='imagenet' or a path to vgg19-dcbb9e9d.pth for real use",
            stacklevel=3,
        )
    elif weights is not None:
        load_checkpoint(model, _imagenet_checkpoint() if weights == "imagenet" else _file_checkpoint(weights))
    return model.eval().requires_grad_(False)


def load_checkpoint(model: VGG19, state: dict[str, torch.Tensor]) -> None:
    """Load a torchvision VGG19 checkpoint strictly (its classifier is checked, then dropped)."""
    full = VGG19(with_classifier=True)
    full.load_state_dict(state, strict=True)
    model.features.load_state_dict(full.features.state_dict(), strict=True)


def _file_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: VGG19 checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable torch checkpoint ({error})") from None


def imagenet_cache_path() -> Path:
    """Where ``torch.hub`` caches torchvision's VGG19 checkpoint (the file may not exist)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(IMAGENET_URL).name


def _imagenet_checkpoint() -> dict[str, torch.Tensor]:
    cache = imagenet_cache_path()
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        return torch.hub.load_state_dict_from_url(IMAGENET_URL, map_location="cpu", check_hash=True, progress=True)
    except Exception as error:
        raise RuntimeError(
            f"could not fetch the ImageNet VGG19 weights from {IMAGENET_URL} ({type(error).__name__}: {error}). "
            f"Offline, copy vgg19-dcbb9e9d.pth to {cache} or pass weights=<path to the file>"
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
