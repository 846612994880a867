"""Call timers on the event loop: one ``loop.call_at`` handle per (call, kind), no sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from voicecall.calls.commands import TimerKind

__all__ = ["TimerTable"]


class TimerTable:
    """Armed timers keyed by call id and kind; re-arming replaces, cancelling is idempotent."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        clock_ms: Callable[[], int],
        on_expired: Callable[[str, TimerKind], None],
    ) -> None:
        self._loop = loop
        self._clock_ms = clock_ms
        self._on_expired = on_expired
        self._handles: dict[tuple[str, TimerKind], asyncio.TimerHandle] = {}

    def arm(self, call_id: str, kind: TimerKind, due_ms: int) -> None:
        """Fire ``on_expired(call_id, kind)`` at epoch ``due_ms`` (now, if it has passed)."""
        self.cancel(call_id, kind)
        delay_s = max(0.0, (due_ms - self._clock_ms()) / 1000)
        key = (call_id, kind)
        self._handles[key] = self._loop.call_at(self._loop.time() + delay_s, self._fire, key)

    def cancel(self, call_id: str, kind: TimerKind) -> None:
        """Disarm a timer if it is armed."""
        handle = self._handles.pop((call_id, kind), None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        """Disarm every timer."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def armed(self, call_id: str) -> set[TimerKind]:
        """The kinds of timer currently armed for a call."""
        return {kind for (cid, kind) in self._handles if cid == call_id}

    def _fire(self, key: tuple[str, TimerKind]) -> None:
        self._handles.pop(key, None)
        self._on_expired(*key)
