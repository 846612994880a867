"""Crash-safe appends of call record snapshots to ``calls.jsonl`` (SPEC §10.1)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import orjson

from voicecall.errors import StoreError
from voicecall.store.guard import fit_record
from voicecall.store.records import latest_snapshots

__all__ = ["CallStore"]

log = logging.getLogger(__name__)

_DIR_MODE = 0o700
_FILE_MODE = 0o600


class CallStore:
    """Append-only store of CallRecord snapshots, one compact JSON line per mutation.

    Each line goes to the file in one ``write()`` (flushed to the kernel; ``fsync=True`` also
    syncs it to disk), so a crash leaves at most a torn last line, which readers skip. Without
    fsync an append is a few syscalls into the page cache, done inline on the event loop (a
    worker-thread hop per line cost more than the write: the many-calls load test measured it
    at 13 % of the gateway's CPU); with fsync, appends are serialized by an ``asyncio.Lock`` and
    run in a worker thread, since a sync can take milliseconds. A write failure raises
    StoreError and marks the store unhealthy until the next successful append. Before writing,
    the store checks that the file ends with a newline and starts a fresh line if a crash or a
    failed write left half a line behind, so that line never corrupts the next record.
    """

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self._path = Path(path)
        self._fsync = fsync
        self._lock = asyncio.Lock()
        # A cancelled append releases the asyncio lock while its thread still writes; this
        # keeps that write and the next one from overlapping.
        self._write_lock = threading.Lock()
        self._last_error: str | None = None
        try:
            self._ensure_dir()
        except OSError as exc:
            self._last_error = self._error_message(exc)
            log.warning("%s", self._last_error)

    @property
    def path(self) -> Path:
        """The ``calls.jsonl`` file this store appends to."""
        return self._path

    @property
    def healthy(self) -> bool:
        """False after a failed append, until an append succeeds again."""
        return self._last_error is None

    @property
    def last_error(self) -> str | None:
        """The message of the last failure, or None while healthy."""
        return self._last_error

    async def append(self, record: Mapping[str, Any]) -> None:
        """Persist one snapshot; raises StoreError (naming the path) if it cannot be written.

        A record that cannot be serialized raises TypeError (a caller bug, not a store fault).
        """
        line = orjson.dumps(fit_record(record)) + b"\n"
        if not self._fsync:
            self._append_now(line)
            return
        async with self._lock:
            try:
                await asyncio.to_thread(self._write_line, line)
            except OSError as exc:
                self._failed(exc)
            self._succeeded()

    def _append_now(self, line: bytes) -> None:
        try:
            self._write_line(line)
        except OSError as exc:
            self._failed(exc)
        self._succeeded()

    def _failed(self, exc: OSError) -> NoReturn:
        self._last_error = self._error_message(exc)
        log.error("%s", self._last_error)
        raise StoreError(self._last_error) from exc

    def _succeeded(self) -> None:
        if self._last_error is not None:
            log.info("call store %s is writable again", self._path)
        self._last_error = None

    def load_latest(self) -> dict[str, dict[str, Any]]:
        """Map every callId in the file to its last snapshot; a missing file gives ``{}``."""
        return latest_snapshots(self._path)

    def _error_message(self, exc: OSError) -> str:
        reason = exc.strerror or str(exc)
        return f"cannot write call record to {self._path}: {reason}"

    def _ensure_dir(self) -> None:
        directory = self._path.parent
        # Something that exists but is not a directory is left for os.open to report (ENOTDIR).
        if not directory.exists():
            directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)

    def _write_line(self, line: bytes) -> None:
        with self._write_lock:
            self._write_line_locked(line)

    def _write_line_locked(self, line: bytes) -> None:
        self._ensure_dir()
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self._path, flags, _FILE_MODE)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            written = os.write(fd, line)
            # Regular files only write short when something is wrong (disk full, signal);
            # finishing the line keeps it whole, and a failure here surfaces as the error.
            while written < len(line):
                written += os.write(fd, line[written:])
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
