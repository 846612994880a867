"""tail: the last lines, then new lines, surviving truncation, replacement and absence."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from voicecall.store.reports import tail


class _Screen:
    """Collects printed lines and lets a test wait until some condition on them holds."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def write(self, line: str) -> None:
        self.lines.append(line)
        self._changed.set()

    async def until(self, condition: Callable[[list[str]], bool]) -> None:
        while not condition(self.lines):
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), timeout=30)


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)


async def test_tail_prints_last_lines_then_follows_truncation_and_replacement(
    tmp_path: Path,
) -> None:
    """The last 25 lines print, then appended lines; truncation and replacement restart it."""
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(f'{{"n":{i}}}\n' for i in range(1, 41)))
    screen, stop = _Screen(), asyncio.Event()
    task = asyncio.create_task(tail(path, poll_ms=50, write=screen.write, stop=stop))

    await screen.until(lambda lines: len(lines) >= 25)
    assert screen.lines == [f'{{"n":{i}}}' for i in range(16, 41)]

    _append(path, '{"n":41}\n{"n":4')
    await screen.until(lambda lines: lines[-1] == '{"n":41}')
    _append(path, "2}\n")
    await screen.until(lambda lines: lines[-1] == '{"n":42}')

    path.write_text("after-truncate-1\nafter-truncate-2\n")
    await screen.until(lambda lines: lines[-1] == "after-truncate-2")

    replacement = tmp_path / "new.jsonl"
    replacement.write_text("replaced-1\n")
    os.replace(replacement, path)
    await screen.until(lambda lines: lines[-1] == "replaced-1")
    _append(path, "replaced-2\n")
    await screen.until(lambda lines: lines[-1] == "replaced-2")

    stop.set()
    await task
    assert screen.lines[25:] == [
        '{"n":41}',
        '{"n":42}',
        "after-truncate-1",
        "after-truncate-2",
        "replaced-1",
        "replaced-2",
    ]


async def test_tail_waits_for_a_missing_file_and_honours_since(tmp_path: Path) -> None:
    """A missing file is waited for; since=0 prints no history, only new lines."""
    missing = tmp_path / "later.jsonl"
    screen, stop = _Screen(), asyncio.Event()
    task = asyncio.create_task(tail(missing, poll_ms=1, write=screen.write, stop=stop))
    missing.write_text("first\nsecond\n")
    await screen.until(lambda lines: len(lines) >= 2)

    existing = tmp_path / "existing.jsonl"
    existing.write_text("old-1\nold-2\n")
    quiet = _Screen()
    quiet_task = asyncio.create_task(
        tail(existing, since=0, poll_ms=50, write=quiet.write, stop=stop)
    )
    # One scheduling step lets the new task open the file and skip its history.
    await asyncio.sleep(0)
    _append(existing, "new-1\n")
    await quiet.until(lambda lines: len(lines) >= 1)

    stop.set()
    await asyncio.gather(task, quiet_task)
    assert screen.lines == ["first", "second"]
    assert quiet.lines == ["new-1"]
