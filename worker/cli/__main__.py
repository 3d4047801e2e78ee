"""``python -m worker.cli`` is the ``badges`` command."""

import sys

from worker.cli import main

sys.exit(main())
