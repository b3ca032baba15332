"""Former home of the dataset readers and generators, kept for scripts that import them from
here: the readers are :mod:`dfr.data.readers`, the generators :mod:`dfr.data.synthetic`."""
from dfr.data.readers import *  # noqa: F403
from dfr.data.readers import __all__ as _readers
from dfr.data.synthetic import *  # noqa: F403
from dfr.data.synthetic import __all__ as _synthetic

__all__ = [*_readers, *_synthetic]
