"""Per-provider webhook replay cache (SPEC §4.4): the first response per request key, 10 minutes."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CachedResponse", "ReplayCache"]

_WINDOW_MS = 10 * 60 * 1000
_MAX_KEYS = 10_000
_PRUNE_EVERY = 64


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """The first response given to a request key, replayed verbatim to duplicates."""

    status: int
    body: bytes
    content_type: str


class ReplayCache:
    """Remembers request keys; a reserved key without a response yet replays as ``OK``.

    ``clock_ms`` is injectable (monotonic milliseconds by default) so tests can move the window.
    """

    def __init__(self, *, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms or (lambda: int(time.monotonic() * 1000))
        self._entries: OrderedDict[str, tuple[int, CachedResponse | None]] = OrderedDict()
        self._inserts = 0

    def __len__(self) -> int:
        return len(self._entries)

    def reserve(self, key: str) -> tuple[bool, CachedResponse | None]:
        """``(True, None)`` for a new key (now reserved); ``(False, cached)`` for a replay."""
        now_ms = self._clock_ms()
        entry = self._entries.get(key)
        if entry is not None and now_ms - entry[0] <= _WINDOW_MS:
            return False, entry[1]
        self._entries[key] = (now_ms, None)
        self._entries.move_to_end(key)
        self._inserts += 1
        if self._inserts % _PRUNE_EVERY == 0 or len(self._entries) > _MAX_KEYS:
            self._prune(now_ms)
        return True, None

    def complete(self, key: str, response: CachedResponse) -> None:
        """Store the first response for a reserved key."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (entry[0], response)

    def release(self, key: str) -> None:
        """Forget a key so a carrier retry is processed again."""
        self._entries.pop(key, None)

    def _prune(self, now_ms: int) -> None:
        while self._entries:
            key, (seen_ms, _) = next(iter(self._entries.items()))
            if now_ms - seen_ms > _WINDOW_MS or len(self._entries) > _MAX_KEYS:
                del self._entries[key]
            else:
                break
