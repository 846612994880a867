"""The offline mock carrier: records every command and plays a simulated callee (SPEC §3.6).

Media streams. With ``streaming.enabled``, each conversation call (outbound in conversation
mode, or inbound) gets a media-stream URL once the runtime has processed its ``call.answered``
(the simulated callee's, or one posted as a mock webhook): ``{streamPath}/{token}`` next to the
webhook URL carriers are given (SPEC §4.6) — ``publicUrl``/tunnel/Tailscale with ``https`` →
``wss``, else ``ws://{serve.bind}:{port}`` — with the public path prefix in front, like the real
carriers' stream URLs. The token is 16 random bytes (base64url) minted once per call, single
use (the first socket that presents it consumes it) and forgotten when the call ends. The URL
is kept in the record's ``metadata.streamUrl`` and reported as ``streamUrl`` by
``voicecall.status`` while the call is live. Frames are Twilio Media Streams frames
(:mod:`voicecall.carriers.mock.stream`), ``start.callSid`` being the mock ``providerCallId``.
With ``realtime.enabled`` and the realtime bridge bound (:meth:`MockCarrier.bind_realtime`, done
by the gateway) the URL minted at ``call.answered`` is the realtime one instead,
``{realtime.streamPath}/{token}`` with a token from the bridge's mint (UUID v4, single use, 30 s;
SPEC §3.6, §7.1), reported as ``streamUrl`` the same way; its frames are Twilio's too.

Simulated far end and streams. ``mock.simulate`` keeps playing the callee while streaming is
on, and the stream is there for an external client (a test, a softphone bridge) to be the
callee's audio. As on every streaming carrier, a conversation call then speaks its greeting
only once a stream's transcription is ready; until a stream connects, speech asked of the call
(``continue``/``speak``) is "heard" as text and listen turns are answered from ``mock.script``
exactly as with streaming off. While a stream is connected, the stream is the callee: listen
turns get no scripted line (the caller's words come from the stream's transcription) and bot
speech goes out on the stream. Ringing, outcomes and ``mock.hangupAfterMs`` are unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from voicecall.calls.events import event_from_dict
from voicecall.calls.record import CallRecord
from voicecall.calls.status import MOCK_STREAM_URL_KEY
from voicecall.carriers.base import (
    CallControl,
    CallStatus,
    Carrier,
    EventSink,
    Verification,
    WebhookReply,
    WebhookRequest,
)
from voicecall.carriers.mock.settings import MockSettings
from voicecall.carriers.mock.stream import MockStreamProtocol, SingleUseStreamTokens
from voicecall.carriers.mock.webhook import parse_webhook, verify_request
from voicecall.config import VoicecallConfig
from voicecall.errors import CallEndedError, CallError, InvalidParamsError

__all__ = ["MockCall", "MockCarrier", "RecordedCommand"]

logger = logging.getLogger(__name__)

_TERMINAL_ID_WORDS = ("stale", "ended", "completed")
_HISTORY_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class RecordedCommand:
    """One command the mock received, as tests and ``status`` report it."""

    name: str
    provider_call_id: str
    args: dict[str, Any]
    at_ms: int


@dataclass(slots=True)
class MockCall:
    """The simulated far end of one call."""

    call_id: str
    provider_call_id: str
    from_number: str
    to_number: str
    direction: str
    mode: str
    outcome: str
    status: str = "queued"
    answered: bool = False
    ended: bool = False
    listening: bool = False
    turn_token: str | None = None
    script_index: int = 0
    pre_connect_dtmf: str | None = None
    dtmf_received: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)


class MockCarrier(Carrier):
    """A carrier with no network; its callee follows ``mock.*`` settings on loop timers."""

    name = "mock"
    supports_pre_connect_dtmf = True

    def __init__(
        self,
        config: Any = None,
        *,
        settings: MockSettings | None = None,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else MockSettings.from_config(config)
        # Media streams need the listener's config (stream path, public URL); plain mappings
        # and settings-only carriers (unit tests) have none.
        self._config = config if isinstance(config, VoicecallConfig) else None
        self._streaming = self._config is not None and bool(self._config.streaming.enabled)
        if self._streaming:
            self.stream_tokens = SingleUseStreamTokens()
        self._realtime_mint: Callable[[str, str], str] | None = None
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._sink: EventSink | None = None
        self._calls: dict[str, MockCall] = {}
        self._playbacks: dict[asyncio.Future[None], tuple[str, asyncio.TimerHandle]] = {}
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        self.commands: deque[RecordedCommand] = deque(maxlen=_HISTORY_LIMIT)
        self.events: deque[dict[str, Any]] = deque(maxlen=_HISTORY_LIMIT)

    # -- lifecycle -------------------------------------------------------------------------

    def set_event_sink(self, sink: EventSink) -> None:
        self._sink = sink

    def stream_protocol(self) -> MockStreamProtocol | None:
        """Twilio Media Streams frames with the token in the path; None without streams.

        Streams are classic streaming, or realtime once the bridge is bound (the realtime socket
        server takes its codecs here too; the classic stream server still refuses classic
        sockets with streaming off, as there are no classic stream tokens then).
        """
        return self.realtime_stream_protocol() if self._serves_streams() else None

    def realtime_stream_protocol(self) -> MockStreamProtocol:
        """A fresh codec for one realtime-bridge socket: Twilio frames (SPEC §3.6)."""
        return MockStreamProtocol()

    def bind_realtime(self, mint: Callable[[str, str], str] | None) -> None:
        """Answered conversation calls get a realtime ``streamUrl`` from ``mint(callId, pcid)``.

        Bound by the gateway when the realtime bridge runs; unbound, calls get classic stream
        URLs (with streaming on) or none.
        """
        self._realtime_mint = mint

    def _realtime(self) -> Callable[[str, str], str] | None:
        """The bound mint while realtime is on (None: classic streaming or none)."""
        config = self._config
        if config is None or not config.realtime.enabled:
            return None
        return self._realtime_mint

    def _serves_streams(self) -> bool:
        return self._streaming or self._realtime() is not None

    async def start(self) -> None:
        self._closed = False
        self._ensure_pump()

    async def aclose(self) -> None:
        self._closed = True
        for call in self._calls.values():
            self._cancel_timers(call)
        for future in list(self._playbacks):
            self._finish_playback(future)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None

    async def wait_delivered(self) -> None:
        """Return once every event emitted so far has been handed to the sink."""
        await self._outbox.join()

    # -- webhooks (SPEC §3.6: no signatures; bodies are normalized events) ------------------

    def verify_webhook(self, request: WebhookRequest) -> Verification:
        """Mock webhooks are unsigned: always valid, keyed by a hash of the request."""
        verified = verify_request(request.method, request.url, request.body)
        return Verification(ok=verified.ok, request_key=verified.request_key)

    async def handle_webhook(
        self, request: WebhookRequest, verification: Verification, control: CallControl
    ) -> WebhookReply:
        """Feed the body's events to the runtime; a malformed body is 400 and changes nothing."""
        try:
            events = parse_webhook(request.body, now_ms=request.received_at_ms)
            # Check every event before the first is processed, so a bad one leaves no trace.
            for event in events:
                event_from_dict(event)
        except InvalidParamsError as exc:
            return WebhookReply(status=400, body=f"Bad Request: {exc}".encode(), replayable=True)
        await control.handle_events(events)
        for event in events:
            self._after_event(event, control)
        return WebhookReply()

    # -- inspection ------------------------------------------------------------------------

    def call(self, provider_call_id: str) -> MockCall | None:
        """The simulated call behind ``provider_call_id``, if this carrier placed or took it."""
        return self._calls.get(provider_call_id)

    def pre_connect_dtmf(self, provider_call_id: str) -> str | None:
        """The DTMF sequence stored at dial time (for ``metadata.dtmfSent``)."""
        call = self._calls.get(provider_call_id)
        return call.pre_connect_dtmf if call else None

    def commands_for(self, provider_call_id: str) -> list[RecordedCommand]:
        """Recorded commands for one call, oldest first."""
        return [c for c in self.commands if c.provider_call_id == provider_call_id]

    def stream_url(self, provider_call_id: str) -> str | None:
        """The media-stream URL minted for the call (None: none, or streaming is off)."""
        record = self.control.find_by_provider_id(provider_call_id) if self.control else None
        url = record.metadata.get(MOCK_STREAM_URL_KEY) if record is not None else None
        return url if isinstance(url, str) else None

    def pending_timer_count(self) -> int:
        """How many simulated actions are scheduled (calls' timers plus playbacks)."""
        return sum(len(c.timers) for c in self._calls.values()) + len(self._playbacks)

    # -- commands --------------------------------------------------------------------------

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
        if self._closed:
            raise CallError("mock carrier is closed")
        provider_call_id = f"mock-{call_id}"
        self._record(
            "initiateCall",
            provider_call_id,
            callId=call_id,
            fromNumber=from_number,
            toNumber=to_number,
            mode=mode,
            message=message,
            dtmfSequence=dtmf_sequence,
        )
        previous = self._calls.get(provider_call_id)
        if previous is not None:
            self._cancel_timers(previous)
        call = MockCall(
            call_id=call_id,
            provider_call_id=provider_call_id,
            from_number=from_number,
            to_number=to_number,
            direction="outbound",
            mode=mode,
            outcome=self.settings.outcome_for(to_number),
            pre_connect_dtmf=dtmf_sequence or None,
        )
        self._calls[provider_call_id] = call
        if self.settings.simulate:
            self._schedule(call, "progress", self.settings.ring_ms, self._ring)
        return provider_call_id

    async def simulate_inbound_call(self, *, from_number: str, to_number: str) -> str:
        """Have a simulated caller dial in; returns the new provider call id."""
        provider_call_id = f"mock-in-{uuid.uuid4()}"
        call = MockCall(
            call_id="",
            provider_call_id=provider_call_id,
            from_number=from_number,
            to_number=to_number,
            direction="inbound",
            mode="conversation",
            outcome="answer",
            status="ringing",
        )
        self._calls[provider_call_id] = call
        self._emit(call, "call.initiated")
        self._answer(call)
        return provider_call_id

    async def hangup_call(self, provider_call_id: str) -> None:
        self._record("hangupCall", provider_call_id)
        call = self._calls.get(provider_call_id)
        if call is not None and not call.ended:
            # We hung up: the runtime finalizes with hangup-bot; no event comes back.
            self._end(call, "completed", emit=False)

    async def play_tts(self, provider_call_id: str, text: str) -> None:
        self._record("playTts", provider_call_id, text=text)
        call = self._calls.get(provider_call_id)
        if call is not None and call.ended:
            raise CallEndedError(f"call ended: {provider_call_id}")
        if not self.settings.simulate:
            return
        duration_ms = self.settings.speech_ms_per_char * len(text)
        if call is not None:
            call.heard.append(text)
            if call.answered and call.script_index >= len(self.settings.script) > 0:
                # The callee has said everything; it hangs up once it has heard this.
                self._schedule_callee_hangup(call, duration_ms + self.settings.reply_ms)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(duration_ms / 1000, self._finish_playback, future)
        self._playbacks[future] = (provider_call_id, handle)
        await future

    async def start_listening(self, provider_call_id: str, turn_token: str | None) -> None:
        self._record("startListening", provider_call_id, turnToken=turn_token)
        call = self._calls.get(provider_call_id)
        if call is None or call.ended or not call.answered or not self.settings.simulate:
            return
        if self._stream_connected(provider_call_id):
            return  # the stream's client is the callee; its words come from transcription
        call.listening = True
        call.turn_token = turn_token
        if call.script_index < len(self.settings.script):
            self._schedule(call, "reply", self.settings.reply_ms, self._reply)
        else:
            self._schedule_callee_hangup(call, self.settings.reply_ms)

    async def stop_listening(self, provider_call_id: str) -> None:
        self._record("stopListening", provider_call_id)
        call = self._calls.get(provider_call_id)
        if call is not None:
            call.listening = False
            self._cancel_timer(call, "reply")

    async def send_dtmf(self, provider_call_id: str, digits: str) -> None:
        self._record("sendDtmf", provider_call_id, digits=digits)
        call = self._calls.get(provider_call_id)
        if call is not None:
            if call.ended:
                raise CallEndedError(f"call ended: {provider_call_id}")
            call.dtmf_received.append(digits)

    async def get_call_status(self, provider_call_id: str) -> CallStatus:
        if any(word in provider_call_id for word in _TERMINAL_ID_WORDS):
            return CallStatus(status="completed", terminal=True)
        call = self._calls.get(provider_call_id)
        if call is None:
            return CallStatus(status="unknown", terminal=False)
        return CallStatus(status=call.status, terminal=call.ended)

    # -- the simulated callee --------------------------------------------------------------

    def _ring(self, call: MockCall) -> None:
        call.status = "ringing"
        self._emit(call, "call.ringing")
        # answerMs counts from dialling; chaining keeps ringing strictly before the outcome.
        delay_ms = max(0, self.settings.answer_ms - self.settings.ring_ms)
        self._schedule(call, "progress", delay_ms, self._settle)

    def _settle(self, call: MockCall) -> None:
        if call.outcome == "answer":
            self._answer(call)
        elif call.outcome == "voicemail":
            self._emit(call, "call.amd", {"answeredBy": "machine_end_beep"})
            self._end(call, "voicemail")
        else:
            self._end(call, call.outcome)

    def _answer(self, call: MockCall) -> None:
        call.status = "in-progress"
        call.answered = True
        self._emit(call, "call.answered")
        if self.settings.hangup_after_ms is not None:
            self._schedule(call, "hangup-after", self.settings.hangup_after_ms, self._hang_up)

    def _reply(self, call: MockCall) -> None:
        line = self.settings.script[call.script_index]
        call.script_index += 1
        fields: dict[str, Any] = {"transcript": line, "isFinal": True}
        if call.turn_token is not None:
            fields["turnToken"] = call.turn_token
        self._emit(call, "call.speech", fields)

    def _schedule_callee_hangup(self, call: MockCall, delay_ms: float) -> None:
        if "callee-hangup" not in call.timers:
            self._schedule(call, "callee-hangup", delay_ms, self._hang_up)

    def _hang_up(self, call: MockCall) -> None:
        self._end(call, "hangup-user")

    def _end(self, call: MockCall, reason: str, *, emit: bool = True) -> None:
        call.ended = True
        call.listening = False
        call.status = reason
        self._cancel_timers(call)
        if self.stream_tokens is not None:
            self.stream_tokens.forget(call.provider_call_id)
        for future, (provider_call_id, _) in list(self._playbacks.items()):
            if provider_call_id == call.provider_call_id:
                self._finish_playback(future)
        if emit:
            self._emit(call, "call.ended", {"reason": reason})

    # -- media streams (SPEC §3.6, §5.1) ---------------------------------------------------

    def _after_event(self, event: dict[str, Any], control: CallControl | None) -> None:
        """What the carrier does once the runtime has processed one of its call's events."""
        if not self._serves_streams() or control is None:
            return
        kind = event.get("type")
        if kind == "call.answered":
            self._open_stream(event, control)
        elif kind == "call.ended" and self.stream_tokens is not None:
            record = self._record_of(event, control)
            if record is not None and record.provider_call_id:
                self.stream_tokens.forget(record.provider_call_id)

    @staticmethod
    def _record_of(event: dict[str, Any], control: CallControl) -> CallRecord | None:
        call_id, pcid = event.get("callId"), event.get("providerCallId")
        record = control.get_record(call_id) if isinstance(call_id, str) and call_id else None
        if record is None and isinstance(pcid, str) and pcid:
            record = control.find_by_provider_id(pcid)
        return record

    def _open_stream(self, event: dict[str, Any], control: CallControl) -> None:
        """Mint the answered call's stream token and publish its URL (once per call).

        Realtime (bridge bound) comes first; notify calls never stream (SPEC §2.5).
        """
        record = self._record_of(event, control)
        if record is None or record.ended_at_ms is not None:
            return
        pcid = record.provider_call_id
        conversation = record.direction == "inbound" or record.mode == "conversation"
        if not pcid or not conversation or MOCK_STREAM_URL_KEY in record.metadata:
            return
        mint, config = self._realtime(), self._config
        if mint is not None and config is not None:
            base = self._stream_base_url(config.realtime.stream_path)
            if base is None:
                return
            token = mint(record.call_id, pcid)
            record.metadata[MOCK_STREAM_URL_KEY] = f"{base}/{quote(token, safe='')}"
            logger.info("mock call %s: realtime stream URL minted", record.call_id)
            return
        tokens = self.stream_tokens
        if tokens is None or config is None:
            return
        base = self._stream_base_url(config.streaming.stream_path)
        if base is None:
            return
        record.metadata[MOCK_STREAM_URL_KEY] = f"{base}/{tokens.mint(pcid)}"
        logger.info("mock call %s: media stream URL minted", record.call_id)

    def _stream_base_url(self, path: str | None = None) -> str | None:
        """``ws(s)://host{prefix}{path}`` next to the webhook URL carriers are given (``path``:
        the classic ``streamPath`` unless given)."""
        from voicecall.exposure.webhook_url import (
            public_path_prefix,
            public_route_url,
            resolve_webhook_url,
        )

        config = self._config
        if config is None:
            return None
        webhook_url = self.context.webhook_url or resolve_webhook_url(config)
        path = path if path is not None else config.streaming.stream_path
        return public_route_url(
            webhook_url,
            path.rstrip("/"),
            prefix=public_path_prefix(config),
            websocket=True,
        )

    def _stream_connected(self, provider_call_id: str) -> bool:
        control = self.control
        record = control.find_by_provider_id(provider_call_id) if control is not None else None
        view = control.call_view(record.call_id) if control and record else None
        return view is not None and view.stream_connected

    # -- plumbing --------------------------------------------------------------------------

    def _record(self, name: str, provider_call_id: str, **args: Any) -> None:
        self.commands.append(RecordedCommand(name, provider_call_id, args, self._now_ms()))

    def _schedule(
        self, call: MockCall, key: str, delay_ms: float, action: Callable[[MockCall], None]
    ) -> None:
        self._cancel_timer(call, key)
        loop = asyncio.get_running_loop()
        call.timers[key] = loop.call_later(delay_ms / 1000, self._fire, call, key, action)

    def _fire(self, call: MockCall, key: str, action: Callable[[MockCall], None]) -> None:
        call.timers.pop(key, None)
        if not call.ended and not self._closed:
            action(call)

    def _cancel_timer(self, call: MockCall, key: str) -> None:
        handle = call.timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _cancel_timers(self, call: MockCall) -> None:
        for handle in call.timers.values():
            handle.cancel()
        call.timers.clear()

    def _finish_playback(self, future: asyncio.Future[None]) -> None:
        entry = self._playbacks.pop(future, None)
        if entry is not None:
            entry[1].cancel()
        if not future.done():
            future.set_result(None)

    def _emit(self, call: MockCall, event_type: str, fields: dict[str, Any] | None = None) -> None:
        event: dict[str, Any] = {
            "type": event_type,
            "id": str(uuid.uuid4()),
            "callId": call.call_id,
            "providerCallId": call.provider_call_id,
            "timestamp": self._now_ms(),
            "direction": call.direction,
            "from": call.from_number,
            "to": call.to_number,
        }
        if fields:
            event.update(fields)
        self.events.append(event)
        self._outbox.put_nowait(event)
        self._ensure_pump()

    def _ensure_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._deliver_events())

    async def _deliver_events(self) -> None:
        # One task delivers events in emission order; the sink may await freely.
        while True:
            event = await self._outbox.get()
            try:
                if self._sink is not None:
                    await self._sink(event)
                    self._after_event(event, self.control)
            except Exception:
                logger.exception("mock carrier: event sink failed on %s", event["type"])
            finally:
                self._outbox.task_done()
