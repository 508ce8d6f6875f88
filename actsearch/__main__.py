"""``python -m actsearch``: the same as the ``actsearch`` command."""
import sys

from .cli import main

sys.exit(main())
