"""``python -m batchgen``."""

import sys

from batchgen.cli import main

sys.exit(main())
