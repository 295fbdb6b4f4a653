"""``python -m fastnn``: the same command line as the ``fastnn`` script."""
import sys

from fastnn.cli import main

sys.exit(main())
