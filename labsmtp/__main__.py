"""python -m labsmtp: see labsmtp.cli."""

import sys

from .cli import main

sys.exit(main())
