"""``python -m orthobook.experiments``: see :mod:`orthobook.experiments.cli`."""

import sys

from orthobook.experiments.cli import main

if __name__ == "__main__":
    sys.exit(main())
