"""Deployment: ONNX files of fitted models, and live video (``dfr stream``)."""
