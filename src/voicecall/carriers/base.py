"""The interface every carrier implements, so the call runtime never knows which one it drives."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from voicecall.calls.record import CallRecord

__all__ = [
    "CallControl",
    "CallStatus",
    "Carrier",
    "EventSink",
    "Verification",
    "WebhookReply",
    "WebhookRequest",
]

EventSink = Callable[[dict[str, Any]], Awaitable[None]]
"""Where a carrier pushes normalized events (SPEC §2.4 camelCase dicts)."""


@dataclass(frozen=True, slots=True)
class CallStatus:
    """A carrier's view of one call: its raw status and whether the call is over."""

    status: str
    terminal: bool


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One carrier webhook as the pipeline received it (SPEC §4.1), before verification.

    ``url`` is the URL the carrier signed: ``publicUrl``'s scheme, host, port and path plus the
    request's raw query, or the URL reconstructed from trusted forwarding headers (SPEC §4.5).
    """

    method: str
    url: str
    headers: Mapping[str, str]  # lower-cased header names
    body: bytes
    query: Mapping[str, str]  # the URL's query, first value per key
    host_header: str | None  # the raw Host header (Twilio's signature port variants)
    public_url: str | None  # the configured publicUrl, if any
    received_at_ms: int


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of a webhook signature check and the request's replay key (SPEC §4.2-4.3)."""

    ok: bool
    request_key: str | None = None
    reason: str | None = None  # logged only, never sent to the peer


@dataclass(frozen=True, slots=True)
class WebhookReply:
    """What the pipeline answers the carrier (SPEC §4.1 step 9)."""

    status: int = 200
    body: bytes = b"OK"
    content_type: str = "text/plain"
    replayable: bool = False  # release the replay reservation (SPEC §2.4 "replayable")
    headers: Mapping[str, str] = field(default_factory=dict)


class CallControl(Protocol):
    """What a carrier may ask of the call runtime while it answers a webhook."""

    async def handle_events(self, events: list[dict[str, Any]]) -> None:
        """Feed normalized events (SPEC §2.4 dicts) through the call manager, in order."""
        ...

    def get_record(self, call_id: str) -> CallRecord | None:
        """The current record of a call (live or recently ended), if known."""
        ...

    def find_by_provider_id(self, provider_call_id: str) -> CallRecord | None:
        """The record that owns a carrier call id, if any."""
        ...


class Carrier(abc.ABC):
    """An async carrier client (I/O zone); events flow out through the sink."""

    name: str
    supports_pre_connect_dtmf: bool
    #: SPEC §4.1 step 4: a webhook passes the pre-auth gate when every header of at least one
    #: group is present (lower-case names); an empty tuple means no gate (the mock carrier).
    webhook_signature_headers: tuple[tuple[str, ...], ...] = ()

    def verify_webhook(self, request: WebhookRequest) -> Verification:
        """Check a webhook's signature (sans-IO); carriers without webhooks refuse everything."""
        return Verification(ok=False, reason=f"carrier {self.name} does not accept webhooks")

    async def handle_webhook(
        self, request: WebhookRequest, verification: Verification, control: CallControl
    ) -> WebhookReply:
        """Parse a verified webhook, feed its events to ``control`` and build the reply body."""
        return WebhookReply(status=404, body=b"Not Found")

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
