"""``python -m dfr``: the ``dfr`` command."""
import sys

from dfr.cli import main

sys.exit(main())
