"""Data: image and clip reading (:mod:`~dfr.data.io`, :mod:`~dfr.data.datasets`,
:mod:`~dfr.data.clips`), the readers of the real dataset layouts (:mod:`~dfr.data.readers`),
synthetic data (:mod:`~dfr.data.synthetic`) and inpainting of annotated objects."""
from dfr.data.datasets import ImageDataset, Mapped, batches, chunks, training_loader

__all__ = ["ImageDataset", "Mapped", "batches", "chunks", "training_loader"]
