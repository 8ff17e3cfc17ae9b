"""``python -m mirrorband.cli``: the same as the ``mirrorband`` command."""

import sys

from mirrorband.cli import main

sys.exit(main())
