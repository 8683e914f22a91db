"""`python -m vector_sync.cli`: the console script."""

import os

from vector_sync.cli import run

os.environ.setdefault("PYTHONUNBUFFERED", "1")
run()
