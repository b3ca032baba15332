"""dfr: unsupervised anomaly segmentation in images and video.

Fit a model on normal data only; for new images or frames get pixel anomaly maps, scores,
binary masks and bounding boxes::

    import dfr
    model = dfr.DFR(preset="cpu").fit("train/good")
    prediction = model.predict("test/")
    model.save("model.dfr")
    model = dfr.load("model.dfr")
"""
from dfr.dfr_model import DFR
from dfr.model import AnomalyModel, load
from dfr.prediction import Prediction
from dfr.scoring import ScoringSettings

__version__ = "0.1.0"

__all__ = ["AnomalyModel", "DFR", "Prediction", "ScoringSettings", "load", "__version__"]
