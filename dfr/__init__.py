"""dfr: unsupervised anomaly segmentation in images and video.

Fit a model on normal data only; for new images or frames get pixel anomaly maps, scores,
binary masks and bounding boxes::

    import dfr
    model = dfr.DFR(preset="cpu").fit("train/good")
    prediction = model.predict("test/")
    model.save("model.dfr")
    model = dfr.load("model.dfr")

Every model, dfr's own and those of installed packages such as ``baselines``, is in one
registry: ``dfr.list_models()``, ``dfr.create_model(name, **params)``.
"""
from dfr import compat
from dfr.api.model import AnomalyModel, load
from dfr.api.prediction import ItemPrediction, Prediction
from dfr.api.registry import create_model, list_models, model_info, register_model
from dfr.models.dfr import DFR
from dfr.scoring import ScoringSettings
from dfr.version import __version__

__all__ = ["AnomalyModel", "DFR", "ItemPrediction", "Prediction", "ScoringSettings", "create_model", "list_models",
           "load", "model_info", "register_model", "__version__"]

compat.install()
