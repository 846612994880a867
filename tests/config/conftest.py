"""Helpers for config tests: write a config file into a temporary home."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

__all__ = ["write_config"]


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str, str], Path]:
    """Writes `text` to `tmp_path/<name>` and returns its path."""

    def write(text: str, name: str = "config.json5") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
