"""The offline mock carrier: records every command and plays a simulated callee (SPEC §3.6)."""

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

from voicecall.calls.events import event_from_dict
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
from voicecall.carriers.mock.webhook import parse_webhook, verify_request
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
        for future, (provider_call_id, _) in list(self._playbacks.items()):
            if provider_call_id == call.provider_call_id:
                self._finish_playback(future)
        if emit:
            self._emit(call, "call.ended", {"reason": reason})

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
            except Exception:
                logger.exception("mock carrier: event sink failed on %s", event["type"])
            finally:
                self._outbox.task_done()
