"""The interface every carrier implements, so the call runtime never knows which one it drives."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CallStatus", "Carrier", "EventSink"]

EventSink = Callable[[dict[str, Any]], Awaitable[None]]
"""Where a carrier pushes normalized events (SPEC §2.4 camelCase dicts)."""


@dataclass(frozen=True, slots=True)
class CallStatus:
    """A carrier's view of one call: its raw status and whether the call is over."""

    status: str
    terminal: bool


class Carrier(abc.ABC):
    """An async carrier client (I/O zone); events flow out through the sink."""

    name: str
    supports_pre_connect_dtmf: bool

    @abc.abstractmethod
    def set_event_sink(self, sink: EventSink) -> None:
        """Route normalized events the carrier produces to ``sink``."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Acquire resources (sessions, timers) before the first call."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release resources and cancel anything still pending."""

    @abc.abstractmethod
    async def initiate_call(
        self,
        *,
        call_id: str,
        from_number: str,
        to_number: str,
        mode: str,
        message: str | None,
        dtmf_sequence: str | None,
    ) -> str:
        """Place an outbound call and return its provider call id."""

    @abc.abstractmethod
    async def hangup_call(self, provider_call_id: str) -> None:
        """End the call from our side."""

    @abc.abstractmethod
    async def play_tts(self, provider_call_id: str, text: str) -> None:
        """Speak ``text`` to the far end; return once playback has finished."""

    @abc.abstractmethod
    async def start_listening(self, provider_call_id: str, turn_token: str | None) -> None:
        """Collect the far end's next utterance, tagged with ``turn_token``."""

    @abc.abstractmethod
    async def stop_listening(self, provider_call_id: str) -> None:
        """Stop collecting the far end's speech."""

    @abc.abstractmethod
    async def send_dtmf(self, provider_call_id: str, digits: str) -> None:
        """Send DTMF digits on a connected call."""

    @abc.abstractmethod
    async def get_call_status(self, provider_call_id: str) -> CallStatus:
        """Ask the carrier whether the call still exists."""
