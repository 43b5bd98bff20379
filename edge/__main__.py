"""`python -m edge` runs the classbox command."""

import sys

from edge.cli import main

sys.exit(main())
