"""How the CLI talks to people (rich text, spinners on stderr) and to scripts (`--json`)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import orjson
from rich.console import Console

__all__ = ["CliError", "Output"]


class CliError(Exception):
    """A failure the CLI reports as ``error: <message>`` (plus an optional hint) and exit 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class Output:
    """Writes results to stdout and progress to stderr."""

    def __init__(self, *, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        self._out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self._err = Console(file=sys.stderr, highlight=False, soft_wrap=True)

    def json(self, value: Any, *, indent: bool = False) -> None:
        """One JSON document on stdout (compact unless ``indent``)."""
        option = orjson.OPT_INDENT_2 if indent else 0
        sys.stdout.write(orjson.dumps(value, option=option).decode() + "\n")
        sys.stdout.flush()

    def line(self, text: str, *, style: str | None = None) -> None:
        """A line of human-readable text (rich markup is not interpreted)."""
        self._out.print(text, style=style, markup=False)

    def note(self, text: str) -> None:
        """A side remark on stderr, so stdout stays machine-readable."""
        self._err.print(text, style="dim", markup=False)

    @contextlib.contextmanager
    def spinner(self, text: str) -> Iterator[None]:
        """A transient spinner on stderr while something slow runs (only on a terminal)."""
        if not self._err.is_terminal:
            yield
            return
        with self._err.status(text):
            yield
