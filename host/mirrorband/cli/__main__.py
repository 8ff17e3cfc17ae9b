"""``python -m mirrorband.cli``: the same as the ``mirrorband`` command."""

import sys

from mirrorband.cli.main import main

sys.exit(main())
