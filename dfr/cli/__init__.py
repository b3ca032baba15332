"""The ``dfr`` command line (``dfr.cli:main``, ``python -m dfr``), mirroring the Python API.

- :mod:`~dfr.cli.app`: the parser, running a command, exit statuses;
- :mod:`~dfr.cli.commands`: ``fit``, ``predict``, ``export``, ``stream``;
- :mod:`~dfr.cli.evaluation`: ``bench``, ``evaluate``, ``demo``;
- :mod:`~dfr.cli.arguments`: flags made from the models' signatures and docstrings.
"""
from dfr.cli.app import main
from dfr.cli.arguments import parse_value

__all__ = ["main", "parse_value"]
