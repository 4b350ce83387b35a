"""``python -m glaciermap`` runs the command line."""

import sys

from glaciermap.cli import main

sys.exit(main())
