"""The shared model API: :class:`~dfr.api.model.AnomalyModel` and its results, the one model
registry, the model-file record, parameter checks and the one training loop."""
