"""Tolerant reading of ``calls.jsonl``: envelopes, blank, malformed and torn lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from voicecall.errors import StoreError

__all__ = ["latest_snapshots", "parse_record_line", "read_records"]

log = logging.getLogger(__name__)


def parse_record_line(line: bytes) -> dict[str, Any] | None:
    """Return the CallRecord a line holds, unwrapping envelopes; ``None`` if it holds none.

    Accepted shapes: a raw record, ``{"call": {...}}`` and
    ``{"version": 2, "call": {...}, "persistedAt": ms, "sequence": n}``. A record must be a JSON
    object with a string ``callId``.
    """
    text = line.strip()
    if not text:
        return None
    try:
        value: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        # orjson refuses NaN/Infinity and integers beyond 64 bits; the stdlib accepts them, and
        # the latency report then drops the non-finite numbers itself.
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return None
    if isinstance(value, dict) and isinstance(value.get("call"), dict):
        value = value["call"]
    if not isinstance(value, dict) or not isinstance(value.get("callId"), str):
        return None
    return value


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield every valid record of the file in order; a missing file yields nothing.

    Blank and malformed lines are skipped; a torn last line (a write cut short by a crash) is
    skipped with a logged warning. Raises StoreError when the file exists but cannot be read.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read call records from {path}: {exc.strerror}") from exc
    malformed = 0
    with handle:
        try:
            for line in handle:
                record = parse_record_line(line)
                if record is not None:
                    yield record
                elif line.strip():
                    if not line.endswith(b"\n"):
                        log.warning(
                            "skipped a torn last line in %s (%d bytes; interrupted write)",
                            path,
                            len(line),
                        )
                    else:
                        malformed += 1
        except OSError as exc:
            raise StoreError(f"cannot read call records from {path}: {exc.strerror}") from exc
    if malformed:
        log.warning("skipped %d malformed line(s) in %s", malformed, path)


def latest_snapshots(path: Path) -> dict[str, dict[str, Any]]:
    """Map callId to its last snapshot, ordered by when each call was last written."""
    latest: dict[str, dict[str, Any]] = {}
    for record in read_records(path):
        call_id = record["callId"]
        # Re-inserting moves the call to the end, so iteration order is recency order.
        latest.pop(call_id, None)
        latest[call_id] = record
    return latest
