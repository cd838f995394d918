"""``python -m compress.runtime`` (and the zipapp's entry point)."""

import sys

from compress.runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
