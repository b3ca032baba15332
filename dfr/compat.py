"""Old import paths: modules that moved when dfr was arranged in sub-packages stay importable
under their former names (``import dfr.io`` gives :mod:`dfr.data.io`)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

#: Former module name → where it lives now.
MOVED = {
    "dfr.model": "dfr.api.model",
    "dfr.prediction": "dfr.api.prediction",
    "dfr.serialization": "dfr.api.persistence",
    "dfr.dfr_model": "dfr.models.dfr",
    "dfr.feature_model": "dfr.models.feature_model",
    "dfr.features": "dfr.models.features",
    "dfr.autoencoder": "dfr.models.autoencoder",
    "dfr.backbones": "dfr.models.backbones",
    "dfr.backbones.vgg": "dfr.models.backbones.vgg",
    "dfr.backbones.timm_backbone": "dfr.models.backbones.timm_backbone",
    "dfr.order_statistics": "dfr.scoring.order_statistics",
    "dfr.io": "dfr.data.io",
    "dfr.synthetic": "dfr.data.synthetic.defects",
    "dfr.export": "dfr.deploy.onnx",
    "dfr.stream": "dfr.deploy.stream",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a former module name as the module that took its place."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The module is the one imported under its new name: nothing more to run."""


def install() -> None:
    """Make the former names importable (once)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModules())  # before the path finders, which would load a second copy
