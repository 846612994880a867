"""Lets `python -m voicecall.cli` run the command line."""

import sys

from voicecall.cli import main

__all__: list[str] = []

sys.exit(main())
