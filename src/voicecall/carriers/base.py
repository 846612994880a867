"""The interface every carrier implements, so the call runtime never knows which one it drives."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from voicecall.calls.view import CallView

if TYPE_CHECKING:
    import aiohttp

    from voicecall.calls.record import CallRecord
    from voicecall.carriers.media_stream import StreamProtocol, StreamTokens

__all__ = [
    "CallControl",
    "CallStatus",
    "CallView",
    "Carrier",
    "CarrierContext",
    "EventSink",
    "StreamHooks",
    "StreamSender",
    "Verification",
    "WebhookReply",
    "WebhookRequest",
]

EventSink = Callable[[dict[str, Any]], Awaitable[None]]
StreamSender = Callable[[str, bytes], Awaitable[bool]]
"""``sender(call_id, ulaw_8k)``: queue u-law 8 kHz audio on the call's current media stream,
framed by that stream's protocol; False when the call has no open stream."""
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


@dataclass(frozen=True, slots=True)
class CarrierContext:
    """The process's shared resources a carrier gets before ``start()``.

    ``http_session`` is the one shared ``aiohttp.ClientSession`` (None only in tests that never
    reach a REST API); ``webhook_url`` is the public webhook URL carriers put in their requests
    (SPEC §4.6: ``publicUrl``, else the tunnel/Tailscale URL, else the local listener URL).
    """

    http_session: aiohttp.ClientSession | None = None
    webhook_url: str | None = None


class CallControl(Protocol):
    """What a carrier may ask of the call runtime (while it answers a webhook, or any time after
    ``Carrier.bind_control``)."""

    async def handle_events(
        self, events: list[dict[str, Any]], *, in_band_rejection: bool = False
    ) -> None:
        """Feed normalized events (SPEC §2.4 dicts) through the call manager, in order.

        ``in_band_rejection``: the carrier's reply itself refuses a caller the inbound policy
        rejects (Twilio ``<Reject>``, Plivo ``<Hangup reason="rejected"/>``), so the manager
        issues no REST hangup for it, now or on any later webhook of that call (SPEC §12).
        """
        ...

    def call_view(self, call_id: str) -> CallView | None:
        """The live view of a call (None once it has ended or when unknown)."""
        ...

    async def claim_initial_message(self, call_id: str) -> str | None:
        """Take the call's pending initial message/greeting for the carrier to speak in its reply.

        Returns None when there is none (or it is already being spoken). The manager records it
        as spoken (bot transcript entry, ``answeredAt``, state ``listening``) and persists, so it
        is delivered exactly once (SPEC §2.5, §3.2 T-SPEAK).
        """
        ...

    def get_record(self, call_id: str) -> CallRecord | None:
        """The current record of a call (live or recently ended), if known."""
        ...

    def find_by_provider_id(self, provider_call_id: str) -> CallRecord | None:
        """The record that owns a carrier call id, if any."""
        ...


@runtime_checkable
class StreamHooks(Protocol):
    """The call runtime's media-stream hooks, for carriers that learn of stream failures from
    webhooks (Telnyx ``streaming.failed``); ``CallRuntime`` implements them."""

    def current_stream_id(self, call_id: str) -> str | None:
        """The call's current media stream id (None when it has none or has ended)."""
        ...

    async def stream_connected(self, call_id: str, stream_id: str) -> None:
        """``stream_id`` is now the call's stream (a pending disconnect grace is cancelled)."""
        ...

    async def stream_disconnected(self, call_id: str, stream_id: str) -> None:
        """The current stream closed: the 2 s grace before the call ends starts."""
        ...


class Carrier(abc.ABC):
    """An async carrier client (I/O zone); events flow out through the sink."""

    name: str
    supports_pre_connect_dtmf: bool
    #: SPEC §4.1 step 4: a webhook passes the pre-auth gate when every header of at least one
    #: group is present (lower-case names); an empty tuple means no gate (the mock carrier).
    webhook_signature_headers: tuple[tuple[str, ...], ...] = ()

    context: CarrierContext = CarrierContext()
    control: CallControl | None = None
    #: Tokens of the stream documents this carrier served (SPEC §5.1); None without streams.
    stream_tokens: StreamTokens | None = None

    def attach(self, context: CarrierContext) -> None:
        """Receive the shared HTTP session and the public webhook URL (before ``start()``)."""
        self.context = context

    def bind_control(self, control: CallControl) -> None:
        """Receive the call runtime, for queries outside a webhook (``CallRuntime.start``)."""
        self.control = control

    def stream_protocol(self) -> StreamProtocol | None:
        """A fresh frame codec for one media-stream connection; None: no media streams."""
        return None

    #: Queues u-law audio on a call's live media stream; False when none is open.
    stream_sender: StreamSender | None = None

    def bind_stream_sender(self, sender: StreamSender) -> None:
        """Receive the media-stream server's outbound path (audio, DTMF tones on the stream)."""
        self.stream_sender = sender

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

    async def dequeue_call(self, provider_call_id: str, call_id: str) -> None:
        """Connect an inbound caller held in the capacity queue (SPEC §3.2 T-QUEUE)."""
        from voicecall.errors import CallError

        raise CallError(f"carrier {self.name} has no inbound capacity queue")
