"""`python -m restorer`: the entry point the recipe launches."""

import sys

from appkit.server import serve

from .app import APP

if __name__ == "__main__":
    sys.exit(serve(APP, default_port=7861))
