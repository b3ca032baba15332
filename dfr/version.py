"""dfr's version, recorded in every model file and report."""
__version__ = "0.1.0"
