"""`python -m workflow`: the entry point the recipe launches (the web page and /api/batch)."""

import sys

from appkit.server import serve

from .app import APP

if __name__ == "__main__":
    sys.exit(serve(APP, default_port=7863))
