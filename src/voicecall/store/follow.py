"""``voicecall tail``: print the last lines of the store, then follow it (SPEC §10.3)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["MIN_POLL_MS", "tail"]

MIN_POLL_MS = 50
_CHUNK_BYTES = 1 << 20


def _start_of_last_lines(fd: int, size: int, count: int) -> int:
    """Offset where the last ``count`` complete lines of the file begin (0 if fewer)."""
    newlines_seen = 0
    end = size
    while end > 0:
        start = max(0, end - _CHUNK_BYTES)
        block = os.pread(fd, end - start, start)
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) >= 0:
            # The newline ending the last complete line is the first one met; the one before
            # the wanted lines is number count + 1.
            newlines_seen += 1
            if newlines_seen == count + 1:
                return start + index + 1
        end = start
    return 0


class _Follower:
    """One open generation of the file: reads new bytes and hands out complete lines."""

    def __init__(self, path: Path, fd: int, position: int) -> None:
        self.path = path
        self.fd = fd
        self.position = position
        self.partial = b""

    def read_lines(self) -> list[bytes]:
        lines: list[bytes] = []
        while chunk := os.pread(self.fd, _CHUNK_BYTES, self.position):
            self.position += len(chunk)
            *complete, self.partial = (self.partial + chunk).split(b"\n")
            lines.extend(complete)
        return lines

    def truncated(self) -> bool:
        return os.fstat(self.fd).st_size < self.position

    def replaced(self) -> bool:
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return True
        return not os.path.samestat(current, os.fstat(self.fd))


def _open(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None


async def tail(
    path: Path,
    *,
    since: int = 25,
    poll_ms: int = 250,
    write: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
) -> None:
    """Print the last ``since`` lines of ``path``, then every new complete line, until ``stop``.

    Lines are printed verbatim (without their newline). Polls every ``poll_ms`` (at least 50).
    A missing file is waited for; a file that shrinks (truncation) or is replaced (new inode,
    e.g. rotation) is read again from its beginning. Runs until ``stop`` is set or cancelled.
    """
    poll_s = max(MIN_POLL_MS, poll_ms) / 1000
    stop = stop or asyncio.Event()
    follower: _Follower | None = None
    first_open = True

    def emit(lines: list[bytes]) -> None:
        for line in lines:
            write(line.decode("utf-8", errors="replace"))

    try:
        while not stop.is_set():
            if follower is None:
                fd = _open(path)
                if fd is not None:
                    start = 0
                    if first_open:
                        start = _start_of_last_lines(fd, os.fstat(fd).st_size, max(0, since))
                    follower = _Follower(path, fd, start)
                first_open = False
            if follower is not None:
                if follower.truncated():
                    follower.position, follower.partial = 0, b""
                emit(follower.read_lines())
                if follower.replaced():
                    # Drain what was written just before the swap, then read the new file from
                    # its beginning on the next pass.
                    emit(follower.read_lines())
                    os.close(follower.fd)
                    follower = None
                    continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_s)
    finally:
        if follower is not None:
            os.close(follower.fd)
