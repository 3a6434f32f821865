"""``python -m daemon`` runs the ``carbond`` command line."""

import sys

from daemon.cli import main

sys.exit(main())
