"""``python -m fastmlp``: the command line, as the ``fastmlp`` script (``fastmlp.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
