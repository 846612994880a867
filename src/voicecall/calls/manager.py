"""The sans-IO call manager: events, requests, timer expiries and carrier results in; commands out.

It owns every call's record and the rules of SPEC §2 (admission, dedupe, inbound policy,
modes, speak/continue/end, timers, restart recovery). It never awaits, sleeps or reads a clock:
each entry point takes ``now_ms`` and returns the commands the I/O pump must execute.
Carrier work is reported back through :meth:`CallManager.carrier_result` under the ``op_id``
of the command that asked for it.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voicecall.calls import commands as cmd
from voicecall.calls.admission import OutboundRequest, admit_outbound, match_route, validate_dtmf
from voicecall.calls.commands import Command, TimerKind
from voicecall.calls.events import (
    AmdDetected,
    AssistantSpoke,
    CallActivated,
    CallAnswered,
    CallEnded,
    CallErrored,
    CallInitiated,
    CallRinging,
    DtmfReceived,
    NormalizedEvent,
    RecordingReady,
    SpeakingStarted,
    SpeechReceived,
)
from voicecall.calls.policy import inbound_allowed
from voicecall.calls.record import CallRecord
from voicecall.calls.session_keys import session_key_for_call
from voicecall.calls.state import CallState, EndReason, is_terminal, next_state
from voicecall.calls.status import call_status_payload, not_active_message
from voicecall.errors import CallEndedError, CallError, UnknownCallError

__all__ = ["DEDUPE_CAPACITY", "STREAM_GRACE_MS", "CallManager"]

DEDUPE_CAPACITY = 10_000
STREAM_GRACE_MS = 2000
DTMF_COLLECT_MS = 1500
REAPER_INTERVAL_MS = 30_000
NOTIFY_FALLBACK_GREETING = "Hello! How can I help you today?"
MAX_DTMF_RECEIVED_CHARS = 256
MAX_ENDED_REMEMBERED = 1000
REAPER_CALL_ID = ""

# Which carriers the manager itself speaks the initial message on `answered` for, per mode
# (Twilio and Plivo notify documents carry the message; Twilio conversation uses T-SPEAK).
_SPEAKS_ON_ANSWER: dict[str, frozenset[str]] = {
    "notify": frozenset({"mock", "telnyx"}),
    "conversation": frozenset({"mock", "telnyx", "plivo"}),
}

_EVENT_STATES: dict[type[Any], CallState] = {
    CallInitiated: CallState.INITIATED,
    CallRinging: CallState.RINGING,
    CallAnswered: CallState.ANSWERED,
    CallActivated: CallState.ACTIVE,
    SpeakingStarted: CallState.SPEAKING,
}


@dataclass
class _Turn:
    token: str
    waiter_id: str
    started_at_ms: int
    listen_started_at_ms: int | None = None


@dataclass
class _Live:
    record: CallRecord
    turn: _Turn | None = None
    initial_in_flight: bool = False
    duration_timer_armed: bool = False
    ending_op: str | None = None
    end_waiters: list[str] = field(default_factory=list)
    end_reason: EndReason = EndReason.HANGUP_BOT
    reply_id: str | None = None
    dtmf_buffer: str = ""
    stream_id: str | None = None


@dataclass(frozen=True)
class _Op:
    kind: str
    call_id: str
    waiter_id: str | None = None
    listen_after: bool = False
    started_at_ms: int = 0


class CallManager:
    """Every call of one gateway, as plain data; see the module docstring for the contract."""

    def __init__(
        self,
        config: Any,
        *,
        webhook_url_configured: bool = True,
        supports_pre_connect_dtmf: bool = False,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._config = config
        self._provider: str = str(config.provider)
        self._webhook_url_configured = webhook_url_configured
        self._supports_pre_connect_dtmf = supports_pre_connect_dtmf
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self._active: dict[str, _Live] = {}
        self._ended: OrderedDict[str, CallRecord] = OrderedDict()
        self._by_provider_id: dict[str, str] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._ops: dict[str, _Op] = {}
        self._rejection_hangups: set[str] = set()
        self._stopping = False
        streams = bool(config.streaming.enabled) or bool(config.realtime.enabled)
        self._uses_media_streams = streams
        self._realtime = bool(config.realtime.enabled)

    # ---- queries -------------------------------------------------------------------------

    @property
    def active_call_count(self) -> int:
        """Non-terminal calls of both directions (pending admissions are already in here)."""
        return len(self._active)

    @property
    def has_pending_work(self) -> bool:
        """Whether any call is live or any carrier operation is still outstanding."""
        return bool(self._active) or bool(self._ops)

    def get_record(self, call_id: str) -> CallRecord | None:
        """The current record of a call, live or recently ended."""
        live = self._active.get(call_id)
        return live.record if live else self._ended.get(call_id)

    def find_by_provider_id(self, provider_call_id: str) -> CallRecord | None:
        """The record that owns a carrier call id, if any."""
        call_id = self._by_provider_id.get(provider_call_id)
        return self.get_record(call_id) if call_id else None

    def status(self, call_id: str | None = None, sid: str | None = None) -> dict[str, Any]:
        """The §10.3 status payload."""
        if call_id or sid:
            record = (self.get_record(call_id) if call_id else None) or (
                self.find_by_provider_id(sid) if sid else None
            )
            if record is None:
                return {"found": False}
            return {"found": True, "call": call_status_payload(record)}
        calls = [call_status_payload(live.record) for live in self._active.values()]
        return {"found": True, "calls": calls}

    def seen_event_keys(self) -> list[str]:
        """The global dedupe keys, oldest first."""
        return list(self._seen)

    # ---- outbound --------------------------------------------------------------------------

    def initiate(
        self, request: OutboundRequest, *, waiter_id: str, now_ms: int
    ) -> tuple[str, list[Command]]:
        """Admit an outbound call: persist it (critical) then place it; the waiter gets the id."""
        self._check_running()
        admitted = admit_outbound(
            request,
            config=self._config,
            active_calls=self.active_call_count,
            webhook_url_configured=self._webhook_url_configured,
            supports_pre_connect_dtmf=self._supports_pre_connect_dtmf,
        )
        call_id = self._new_id()
        route = (
            match_route(self._config.numbers, admitted.from_number) if admitted.route_key else None
        )
        agent_id = request.agent_id or (route[1].agent_id if route else None)
        agent_id = agent_id or self._config.agent_id
        metadata: dict[str, Any] = {"mode": admitted.mode}
        if admitted.message:
            metadata["initialMessage"] = admitted.message
        if admitted.dtmf_sequence:
            metadata["dtmfSequence"] = admitted.dtmf_sequence
        if request.requester_session_key:
            metadata["requesterSessionKey"] = request.requester_session_key
        if admitted.route_key:
            metadata["numberRouteKey"] = admitted.route_key
        record = CallRecord.model_validate(
            {
                "callId": call_id,
                "provider": self._provider,
                "direction": "outbound",
                "state": CallState.INITIATED,
                "from": admitted.from_number,
                "to": admitted.to,
                "sessionKey": session_key_for_call(
                    agent_id=agent_id,
                    call_id=call_id,
                    remote_number=admitted.to,
                    scope=self._config.session_scope,
                    explicit_key=request.session_key,
                ),
                "agentId": agent_id,
                "startedAt": now_ms,
                "metadata": metadata,
            }
        )
        self._active[call_id] = _Live(record=record)
        op_id = self._op("place", call_id, waiter_id)
        return call_id, [
            self._persist(record, critical=True),
            cmd.PlaceCall(
                op_id=op_id,
                call_id=call_id,
                from_number=admitted.from_number,
                to_number=admitted.to,
                mode=admitted.mode,
                message=admitted.message,
                dtmf_sequence=admitted.dtmf_sequence,
            ),
        ]

    def abort_initiate(self, call_id: str) -> None:
        """Forget a call whose first persist failed (it was never dialled)."""
        self._active.pop(call_id, None)
        for op_id, op in list(self._ops.items()):
            if op.call_id == call_id:
                del self._ops[op_id]

    # ---- operations on a call ---------------------------------------------------------------

    def speak(
        self,
        call_id: str,
        text: str,
        *,
        waiter_id: str,
        now_ms: int,
        listen_after: bool = False,
    ) -> list[Command]:
        """Speak ``text`` on a connected call; the waiter resolves when playback finished."""
        live = self._connected(call_id)
        return self._play(live, text, "speak", now_ms, waiter_id=waiter_id, listen=listen_after)

    def continue_call(
        self, call_id: str, text: str, *, waiter_id: str, now_ms: int
    ) -> list[Command]:
        """Speak, then listen for the caller's answer; the waiter gets the transcript."""
        live = self._connected(call_id)
        if live.turn is not None:
            raise CallError("a turn is already in progress for this call")
        live.turn = _Turn(token=self._new_id(), waiter_id=waiter_id, started_at_ms=now_ms)
        live.reply_id = None
        return self._play(live, text, "turn", now_ms, waiter_id=waiter_id)

    def send_dtmf(self, call_id: str, digits: str, *, waiter_id: str, now_ms: int) -> list[Command]:
        """Send DTMF digits on a connected call."""
        validate_dtmf(digits)
        live = self._connected(call_id)
        pcid = self._pcid(live)
        op_id = self._op("dtmf", call_id, waiter_id)
        return [cmd.SendDtmf(op_id=op_id, call_id=call_id, provider_call_id=pcid, digits=digits)]

    def end_call(self, call_id: str, *, waiter_id: str, now_ms: int) -> list[Command]:
        """Hang up and finalize with ``hangup-bot``; idempotent, concurrent requests share one."""
        self._check_running()
        live = self._active.get(call_id)
        if live is None:
            if call_id in self._ended:
                return [cmd.ResolveWaiter(waiter_id, {"success": True})]
            raise UnknownCallError(f"call not found: {call_id}")
        return self._begin_end(live, EndReason.HANGUP_BOT, now_ms, waiter_id)

    # ---- events ---------------------------------------------------------------------------

    def handle_event(self, event: NormalizedEvent, *, now_ms: int) -> list[Command]:
        """Process one normalized carrier event (SPEC §2.4 steps 1–6)."""
        if self._stopping:
            return []
        key = event.dedupe_id
        commit = not (isinstance(event, CallErrored) and event.retryable)
        if key in self._seen:
            return []
        live = self._resolve(event)
        if live is not None and key in live.record.processed_event_ids:
            return []
        out: list[Command] = []
        if live is None:
            out.extend(self._handle_unknown(event, now_ms))
            if commit:
                self._remember(key)
            live_after = self._resolve(event)
            if live_after is None:
                return out
            live = live_after
        elif commit:
            self._remember(key)
        if commit:
            live.record.remember_event_id(key)
        self._upgrade_provider_id(live, event.provider_call_id)
        out.extend(self._apply(live, event, now_ms))
        if live.record.call_id in self._active or not any(
            isinstance(c, cmd.PersistRecord) for c in out
        ):
            out.append(self._persist(live.record))
        return out

    def _resolve(self, event: NormalizedEvent) -> _Live | None:
        if event.call_id and event.call_id in self._active:
            return self._active[event.call_id]
        if event.provider_call_id:
            call_id = self._by_provider_id.get(event.provider_call_id)
            if call_id in self._active:
                return self._active[call_id]
        return None

    def _handle_unknown(self, event: NormalizedEvent, now_ms: int) -> list[Command]:
        pcid = event.provider_call_id
        ended_id = (event.call_id if event.call_id in self._ended else None) or (
            self._by_provider_id.get(pcid) if pcid else None
        )
        if ended_id is not None:
            record = self._ended.get(ended_id)
            if (
                record is not None
                and record.metadata.get("rejectionReason") == "inbound-policy"
                and record.provider_call_id
                and record.provider_call_id not in self._rejection_hangups
            ):
                return self._rejection_hangup(record)
            return []
        if not pcid or event.direction is None:
            return []
        if event.direction == "outbound":
            self._register(event, pcid, "outbound", now_ms, metadata={})
            return []
        return self._register_inbound(event, pcid, now_ms)

    def _register_inbound(self, event: NormalizedEvent, pcid: str, now_ms: int) -> list[Command]:
        config = self._config
        if not inbound_allowed(config.inbound_policy, event.from_number, config.allow_from):
            record = self._new_record(event, pcid, "inbound", now_ms, metadata={})
            record.state = CallState.HANGUP_BOT
            record.end_reason = EndReason.HANGUP_BOT
            record.ended_at_ms = now_ms
            record.metadata["rejectionReason"] = "inbound-policy"
            if event.dedupe_id:
                record.remember_event_id(event.dedupe_id)
            self._by_provider_id[pcid] = record.call_id
            self._remember_ended(record)
            out: list[Command] = [
                cmd.LogMessage("info", f"rejected inbound call from {event.from_number}"),
                self._persist(record),
            ]
            return out + self._rejection_hangup(record)
        route = match_route(config.numbers, event.to_number)
        metadata: dict[str, Any] = {"mode": "conversation"}
        greeting = (route[1].inbound_greeting if route else None) or config.inbound_greeting
        metadata["initialMessage"] = greeting or NOTIFY_FALLBACK_GREETING
        if route:
            metadata["numberRouteKey"] = route[0]
        agent_id = (route[1].agent_id if route else None) or config.agent_id
        self._register(event, pcid, "inbound", now_ms, metadata=metadata, agent_id=agent_id)
        return []

    def _rejection_hangup(self, record: CallRecord) -> list[Command]:
        pcid = record.provider_call_id
        if not pcid:
            return []
        self._rejection_hangups.add(pcid)
        op_id = self._op("reject-hangup", record.call_id)
        return [cmd.HangUp(op_id=op_id, call_id=record.call_id, provider_call_id=pcid)]

    def _new_record(
        self,
        event: NormalizedEvent,
        pcid: str,
        direction: str,
        now_ms: int,
        *,
        metadata: dict[str, Any],
        agent_id: str | None = None,
    ) -> CallRecord:
        call_id = self._new_id()
        agent = agent_id or self._config.agent_id
        remote = event.from_number if direction == "inbound" else event.to_number
        return CallRecord.model_validate(
            {
                "callId": call_id,
                "providerCallId": pcid,
                "provider": self._provider,
                "direction": direction,
                "state": CallState.RINGING,
                "from": event.from_number or "",
                "to": event.to_number or "",
                "sessionKey": session_key_for_call(
                    agent_id=agent,
                    call_id=call_id,
                    remote_number=remote,
                    scope=self._config.session_scope,
                ),
                "agentId": agent,
                "startedAt": now_ms,
                "metadata": metadata,
            }
        )

    def _register(
        self,
        event: NormalizedEvent,
        pcid: str,
        direction: str,
        now_ms: int,
        *,
        metadata: dict[str, Any],
        agent_id: str | None = None,
    ) -> None:
        record = self._new_record(
            event, pcid, direction, now_ms, metadata=metadata, agent_id=agent_id
        )
        self._active[record.call_id] = _Live(record=record)
        self._by_provider_id[pcid] = record.call_id

    def _upgrade_provider_id(self, live: _Live, pcid: str | None) -> None:
        record = live.record
        if not pcid or pcid == record.provider_call_id:
            return
        if record.provider_call_id:
            self._by_provider_id.pop(record.provider_call_id, None)
        record.provider_call_id = pcid
        self._by_provider_id[pcid] = record.call_id

    def _apply(self, live: _Live, event: NormalizedEvent, now_ms: int) -> list[Command]:
        record = live.record
        out: list[Command] = []
        requested = _EVENT_STATES.get(type(event))
        if requested is not None:
            self._set_state(live, requested)
        if isinstance(event, CallAnswered):
            if record.answered_at_ms is None:
                record.answered_at_ms = event.timestamp_ms or now_ms
                out.append(self._arm_duration(live, record.answered_at_ms))
                out.extend(self._on_answered(live, now_ms))
        elif isinstance(event, SpeakingStarted | AssistantSpoke):
            if record.answered_at_ms is None and not live.duration_timer_armed:
                out.append(self._arm_duration(live, now_ms))
            if isinstance(event, AssistantSpoke) and event.transcript:
                record.add_transcript("bot", event.transcript, at_ms=event.timestamp_ms)
        elif isinstance(event, SpeechReceived):
            out.extend(self._on_speech(live, event, now_ms))
        elif isinstance(event, DtmfReceived):
            out.extend(self._on_dtmf(live, event, now_ms))
        elif isinstance(event, AmdDetected):
            record.metadata.setdefault("answeredByFirst", event.answered_by)
            record.metadata["answeredBy"] = event.answered_by
        elif isinstance(event, RecordingReady):
            entry: dict[str, Any] = {"sid": event.sid, "url": event.url}
            if event.duration_sec is not None:
                entry["durationSec"] = event.duration_sec
            if event.status is not None:
                entry["status"] = event.status
            record.metadata.setdefault("recordings", []).append(entry)
        elif isinstance(event, CallEnded):
            reason = _end_reason(event.reason)
            out.extend(self._finalize(live, reason, now_ms))
        elif isinstance(event, CallErrored) and not event.retryable:
            out.append(cmd.LogMessage("warning", f"call {record.call_id} error: {event.error}"))
            out.extend(self._finalize(live, EndReason.ERROR, now_ms))
        return out

    def _on_answered(self, live: _Live, now_ms: int) -> list[Command]:
        mode = live.record.mode or "conversation"
        speakers = _SPEAKS_ON_ANSWER.get(mode, frozenset())
        if self._uses_media_streams or self._provider not in speakers:
            return []
        message = live.record.metadata.get("initialMessage")
        if isinstance(message, str) and message:
            return self._speak_initial(live, message, now_ms)
        if mode == "notify":
            return [self._notify_timer(live, now_ms)]
        return self._listen(live, CallState.LISTENING, None)

    def _speak_initial(self, live: _Live, message: str, now_ms: int) -> list[Command]:
        if live.initial_in_flight or not live.record.provider_call_id:
            return []
        live.initial_in_flight = True
        return self._play(live, message, "initial", now_ms)

    def _on_speech(self, live: _Live, event: SpeechReceived, now_ms: int) -> list[Command]:
        record = live.record
        live.reply_id = None  # any caller speech supersedes an in-flight automatic reply
        text = event.transcript.strip()
        if not event.is_final or not text:
            return []
        turn = live.turn
        if turn is not None and event.turn_token and event.turn_token != turn.token:
            return [
                cmd.LogMessage("debug", f"ignoring transcript for a stale turn on {record.call_id}")
            ]
        if record.answered_at_ms is None and not live.duration_timer_armed:
            out: list[Command] = [self._arm_duration(live, now_ms)]
        else:
            out = []
        record.add_transcript("user", text, at_ms=event.timestamp_ms or now_ms)
        self._set_state(live, CallState.LISTENING)
        if turn is not None and (turn.listen_started_at_ms is not None or event.turn_token):
            return out + self._complete_turn(live, turn, text, now_ms)
        if turn is None and self._auto_responds(record):
            out.extend(self._request_reply(live, text, now_ms))
        return out

    def _on_dtmf(self, live: _Live, event: DtmfReceived, now_ms: int) -> list[Command]:
        record = live.record
        received = str(record.metadata.get("dtmfReceived", "")) + event.digits
        record.metadata["dtmfReceived"] = received[-MAX_DTMF_RECEIVED_CHARS:]
        if live.turn is not None or not self._auto_responds(record):
            return []
        live.reply_id = None
        live.dtmf_buffer += event.digits
        due = now_ms + DTMF_COLLECT_MS
        return [cmd.StartTimer(record.call_id, TimerKind.DTMF_COLLECT, due)]

    def _auto_responds(self, record: CallRecord) -> bool:
        if self._realtime:
            return False
        return record.direction == "inbound" or record.mode == "conversation"

    def _request_reply(self, live: _Live, text: str, now_ms: int) -> list[Command]:
        record = live.record
        reply_id = self._new_id()
        live.reply_id = reply_id
        user_lines = [e for e in record.transcript if e.speaker == "user"]
        opening: tuple[str, ...] = ()
        if len(user_lines) <= 1:
            opening = tuple(e.text for e in record.transcript if e.speaker == "bot")
        return [
            cmd.RunAutoResponse(
                call_id=record.call_id,
                reply_id=reply_id,
                message=text,
                caller_said_at_ms=now_ms,
                opening_lines=opening,
            )
        ]

    def auto_reply_ready(
        self, call_id: str, reply_id: str, spoken: str, *, now_ms: int, error: str | None = None
    ) -> list[Command]:
        """The agent's reply to a caller turn; stale or empty replies are not spoken."""
        live = self._active.get(call_id)
        if live is None or live.reply_id != reply_id:
            return [cmd.LogMessage("info", "discarding superseded automatic reply")]
        live.reply_id = None
        if error is not None:
            return [cmd.LogMessage("warning", f"auto-response failed for {call_id}: {error}")]
        if not spoken.strip() or not live.record.provider_call_id:
            return []
        return self._play(live, spoken, "auto", now_ms, listen=True)

    # ---- streams --------------------------------------------------------------------------

    def stream_connected(self, call_id: str, stream_id: str, *, now_ms: int) -> list[Command]:
        """A media stream became the call's current stream (a reconnect cancels the grace end)."""
        live = self._active.get(call_id)
        if live is None:
            return []
        live.stream_id = stream_id
        live.reply_id = None
        return [cmd.CancelTimer(call_id, TimerKind.STREAM_GRACE)]

    def stream_disconnected(self, call_id: str, stream_id: str, *, now_ms: int) -> list[Command]:
        """A media stream closed; only the current stream's close arms the 2000 ms grace."""
        live = self._active.get(call_id)
        if live is None or live.stream_id != stream_id:
            return []
        live.stream_id = None
        live.reply_id = None
        return [cmd.StartTimer(call_id, TimerKind.STREAM_GRACE, now_ms + STREAM_GRACE_MS)]

    # ---- timers ---------------------------------------------------------------------------

    def start(self, *, now_ms: int) -> list[Command]:
        """Arm the global timers (the stale-call reaper, when enabled)."""
        if self._config.stale_call_reaper_seconds > 0:
            return [
                cmd.StartTimer(REAPER_CALL_ID, TimerKind.STALE_REAPER, now_ms + REAPER_INTERVAL_MS)
            ]
        return []

    def timer_expired(self, call_id: str, kind: TimerKind, *, now_ms: int) -> list[Command]:
        """A timer armed by a StartTimer command fired."""
        if self._stopping:
            return []
        if kind is TimerKind.STALE_REAPER:
            return self._reap(now_ms)
        live = self._active.get(call_id)
        if live is None:
            return []
        record = live.record
        if kind is TimerKind.MAX_DURATION:
            record.metadata["maxDurationExceeded"] = True
            return [self._persist(record), *self._begin_end(live, EndReason.TIMEOUT, now_ms, None)]
        if kind is TimerKind.NOTIFY_HANGUP:
            return self._begin_end(live, EndReason.HANGUP_BOT, now_ms, None)
        if kind is TimerKind.STREAM_GRACE:
            if live.stream_id is not None:
                return []
            log = cmd.LogMessage(
                "info", f"ending call {call_id} reason=stream-disconnect-grace-expired"
            )
            return [log, *self._begin_end(live, EndReason.HANGUP_BOT, now_ms, None)]
        if kind is TimerKind.TRANSCRIPT:
            turn = live.turn
            if turn is None:
                return []
            live.turn = None
            timeout_ms = self._config.transcript_timeout_ms
            return [
                *self._stop_listening(live),
                cmd.RejectWaiter(
                    turn.waiter_id,
                    f"timed out waiting for caller transcript ({timeout_ms} ms)",
                ),
            ]
        if kind is TimerKind.DTMF_COLLECT:
            digits, live.dtmf_buffer = live.dtmf_buffer, ""
            if not digits or live.turn is not None:
                return []
            return self._request_reply(live, f"[caller pressed keys: {digits}]", now_ms)
        return []

    def _reap(self, now_ms: int) -> list[Command]:
        threshold_ms = self._config.stale_call_reaper_seconds * 1000
        out: list[Command] = [
            cmd.StartTimer(REAPER_CALL_ID, TimerKind.STALE_REAPER, now_ms + REAPER_INTERVAL_MS)
        ]
        for live in list(self._active.values()):
            record = live.record
            if (
                record.answered_at_ms is None
                and record.state not in (CallState.SPEAKING, CallState.LISTENING)
                and now_ms - record.started_at_ms > threshold_ms
                and live.ending_op is None
            ):
                out.append(cmd.LogMessage("info", f"reaping stale call {record.call_id}"))
                out.extend(self._begin_end(live, EndReason.TIMEOUT, now_ms, None))
        return out

    # ---- carrier results ------------------------------------------------------------------

    def carrier_result(
        self,
        op_id: str,
        *,
        now_ms: int,
        error: str | None = None,
        provider_call_id: str | None = None,
        gone: bool = False,
        terminal: bool | None = None,
    ) -> list[Command]:
        """A carrier command finished; ``error`` is its failure text, ``gone`` a 404 hangup."""
        op = self._ops.pop(op_id, None)
        if op is None:
            return []
        live = self._active.get(op.call_id)
        handler = getattr(self, f"_done_{op.kind.replace('-', '_')}")
        result: list[Command] = handler(
            op,
            live,
            now_ms=now_ms,
            error=error,
            provider_call_id=provider_call_id,
            gone=gone,
            terminal=terminal,
        )
        return result

    def _done_place(
        self,
        op: _Op,
        live: _Live | None,
        *,
        now_ms: int,
        error: str | None,
        provider_call_id: str | None,
        **_: Any,
    ) -> list[Command]:
        assert op.waiter_id is not None
        if live is None:
            return [cmd.RejectWaiter(op.waiter_id, "call ended before it was placed")]
        if error is not None or not provider_call_id:
            message = f"Failed to initiate call: {error or 'no provider call id'}"
            return [
                *self._finalize(live, EndReason.FAILED, now_ms),
                cmd.RejectWaiter(op.waiter_id, message),
            ]
        self._upgrade_provider_id(live, provider_call_id)
        return [
            self._persist(live.record),
            cmd.ResolveWaiter(op.waiter_id, {"callId": live.record.call_id, "initiated": True}),
        ]

    def _done_hangup(
        self, op: _Op, live: _Live | None, *, now_ms: int, error: str | None, gone: bool, **_: Any
    ) -> list[Command]:
        if live is None:
            return []
        waiters, live.end_waiters, live.ending_op = live.end_waiters, [], None
        if error is not None and not gone:
            out: list[Command] = [
                cmd.LogMessage("warning", f"hangup of {op.call_id} failed: {error}")
            ]
            return out + [cmd.RejectWaiter(w, error) for w in waiters]
        out = self._finalize(live, live.end_reason, now_ms)
        return out + [cmd.ResolveWaiter(w, {"success": True}) for w in waiters]

    def _done_reject_hangup(
        self, op: _Op, live: _Live | None, *, error: str | None, **_: Any
    ) -> list[Command]:
        record = self._ended.get(op.call_id)
        if error is not None and record is not None and record.provider_call_id:
            # Release the reservation so a later webhook for this call retries the hangup.
            self._rejection_hangups.discard(record.provider_call_id)
            return [cmd.LogMessage("warning", f"rejecting inbound call failed: {error}")]
        return []

    def _done_restore_hangup(
        self, op: _Op, live: _Live | None, *, error: str | None, **_: Any
    ) -> list[Command]:
        if error is not None:
            return [
                cmd.LogMessage("warning", f"hangup of restored call {op.call_id} failed: {error}")
            ]
        return []

    def _done_dtmf(
        self, op: _Op, live: _Live | None, *, error: str | None, **_: Any
    ) -> list[Command]:
        assert op.waiter_id is not None
        if error is not None:
            return [cmd.RejectWaiter(op.waiter_id, error)]
        return [cmd.ResolveWaiter(op.waiter_id, {"success": True})]

    def _done_listen(
        self, op: _Op, live: _Live | None, *, error: str | None, **_: Any
    ) -> list[Command]:
        if error is not None:
            return [cmd.LogMessage("warning", f"listening on {op.call_id} failed: {error}")]
        return []

    _done_stop_listen = _done_listen

    def _done_status(
        self,
        op: _Op,
        live: _Live | None,
        *,
        now_ms: int,
        error: str | None,
        terminal: bool | None,
        **_: Any,
    ) -> list[Command]:
        if live is None:
            return []
        if error is None and terminal:
            return self._finalize(live, EndReason.COMPLETED, now_ms)
        base = live.record.answered_at_ms
        if base is None:
            return []
        return [self._arm_duration(live, base)]

    def _done_play(
        self, op: _Op, live: _Live | None, *, now_ms: int, error: str | None, **_: Any
    ) -> list[Command]:
        out: list[Command] = []
        if live is None:
            if op.waiter_id is not None:
                out.append(
                    cmd.RejectWaiter(op.waiter_id, error)
                    if error is not None
                    else cmd.ResolveWaiter(op.waiter_id, {"success": True})
                )
            return out
        record = live.record
        if op.kind == "initial":
            live.initial_in_flight = False
        if error is not None:
            self._set_state(live, CallState.LISTENING)
            out.append(self._persist(record))
            if op.kind == "turn" and live.turn is not None:
                live.turn = None
            if op.waiter_id is not None:
                out.append(cmd.RejectWaiter(op.waiter_id, error))
            return out
        if op.kind == "initial":
            record.metadata.pop("initialMessage", None)
            if record.mode == "notify":
                return [self._persist(record), self._notify_timer(live, now_ms)]
            return self._listen(live, CallState.LISTENING, None)
        if op.kind == "turn":
            turn = live.turn
            if turn is None:
                return []
            turn.listen_started_at_ms = now_ms
            due_ms = now_ms + self._config.transcript_timeout_ms
            return [
                *self._listen(live, CallState.LISTENING, turn.token),
                cmd.StartTimer(record.call_id, TimerKind.TRANSCRIPT, due_ms),
            ]
        conversation = record.direction == "inbound" or record.mode == "conversation"
        if op.kind == "auto" or op.listen_after:
            out.extend(self._listen(live, CallState.LISTENING, None))
        elif conversation:
            self._set_state(live, CallState.LISTENING)
            out.append(self._persist(record))
        if op.waiter_id is not None:
            out.append(cmd.ResolveWaiter(op.waiter_id, {"success": True}))
        return out

    _done_speak = _done_play
    _done_turn = _done_play
    _done_initial = _done_play
    _done_auto = _done_play

    # ---- restart recovery and shutdown -----------------------------------------------------

    def restore(self, snapshots: Iterable[Mapping[str, Any]], *, now_ms: int) -> list[Command]:
        """Take back the calls of a previous run (SPEC §2.9) from their last snapshots."""
        records = sorted(
            (CallRecord.from_json_dict(s) for s in snapshots), key=lambda r: r.started_at_ms
        )
        keys: list[str] = [k for r in records for k in r.processed_event_ids]
        for key in keys[-DEDUPE_CAPACITY:]:
            self._remember(key)
        out: list[Command] = []
        max_ms = self._config.max_duration_seconds * 1000
        for record in records:
            if record.call_id in self._active:
                continue
            if is_terminal(record.state):
                self._remember_ended(record)
                if record.provider_call_id:
                    self._by_provider_id.setdefault(record.provider_call_id, record.call_id)
                continue
            pcid = record.provider_call_id
            if not pcid:
                continue
            live = _Live(record=record)
            self._active[record.call_id] = live
            self._by_provider_id[pcid] = record.call_id
            base = (
                record.answered_at_ms if record.answered_at_ms is not None else record.started_at_ms
            )
            if now_ms - base > max_ms:
                out.extend(self._finalize(live, EndReason.TIMEOUT, now_ms))
                op_id = self._op("restore-hangup", record.call_id)
                out.append(cmd.HangUp(op_id=op_id, call_id=record.call_id, provider_call_id=pcid))
                continue
            op_id = self._op("status", record.call_id)
            out.append(
                cmd.CheckCallStatus(op_id=op_id, call_id=record.call_id, provider_call_id=pcid)
            )
        return out

    def stop(self) -> list[Command]:
        """Stop taking work: reject every waiter; calls stay up for the next start to restore."""
        self._stopping = True
        out: list[Command] = []
        for live in self._active.values():
            if live.turn is not None:
                out.append(cmd.RejectWaiter(live.turn.waiter_id, "voicecall runtime stopped"))
                live.turn = None
            for waiter in live.end_waiters:
                out.append(cmd.RejectWaiter(waiter, "voicecall runtime stopped"))
            live.end_waiters = []
            live.reply_id = None
        for op in self._ops.values():
            if op.waiter_id is not None and op.kind != "turn":
                out.append(cmd.RejectWaiter(op.waiter_id, "voicecall runtime stopped"))
        self._ops.clear()
        return out

    # ---- internals ------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._stopping:
            raise CallError("voicecall runtime is stopping")

    def _connected(self, call_id: str) -> _Live:
        self._check_running()
        live = self._active.get(call_id)
        if live is None:
            ended = self._ended.get(call_id)
            if ended is None:
                raise UnknownCallError(f"call not found: {call_id}")
            raise CallEndedError(not_active_message(ended))
        if not live.record.provider_call_id:
            raise CallError("call is not connected yet")
        return live

    def _pcid(self, live: _Live) -> str:
        pcid = live.record.provider_call_id
        if not pcid:
            raise CallError("call is not connected yet")
        return pcid

    def _op(self, kind: str, call_id: str, waiter_id: str | None = None, **extra: Any) -> str:
        op_id = self._new_id()
        self._ops[op_id] = _Op(kind=kind, call_id=call_id, waiter_id=waiter_id, **extra)
        return op_id

    def _remember(self, key: str) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > DEDUPE_CAPACITY:
            self._seen.popitem(last=False)

    def _remember_ended(self, record: CallRecord) -> None:
        self._ended[record.call_id] = record
        while len(self._ended) > MAX_ENDED_REMEMBERED:
            _, old = self._ended.popitem(last=False)
            if (
                old.provider_call_id
                and self._by_provider_id.get(old.provider_call_id) == old.call_id
            ):
                del self._by_provider_id[old.provider_call_id]

    def _persist(self, record: CallRecord, *, critical: bool = False) -> cmd.PersistRecord:
        return cmd.PersistRecord(record.call_id, record.to_json_dict(), critical)

    def _set_state(self, live: _Live, requested: CallState) -> None:
        live.record.state, _ = next_state(live.record.state, requested)

    def _arm_duration(self, live: _Live, from_ms: int) -> cmd.StartTimer:
        live.duration_timer_armed = True
        due = from_ms + self._config.max_duration_seconds * 1000
        return cmd.StartTimer(live.record.call_id, TimerKind.MAX_DURATION, due)

    def _notify_timer(self, live: _Live, now_ms: int) -> cmd.StartTimer:
        due = now_ms + self._config.outbound.notify_hangup_delay_sec * 1000
        return cmd.StartTimer(live.record.call_id, TimerKind.NOTIFY_HANGUP, due)

    def _play(
        self,
        live: _Live,
        text: str,
        kind: str,
        now_ms: int,
        *,
        waiter_id: str | None = None,
        listen: bool = False,
    ) -> list[Command]:
        record = live.record
        out: list[Command] = []
        if record.answered_at_ms is None:
            record.answered_at_ms = now_ms
            out.append(self._arm_duration(live, now_ms))
        self._set_state(live, CallState.SPEAKING)
        record.add_transcript("bot", text, at_ms=now_ms)
        if kind == "auto":
            reply = next((e for e in reversed(record.transcript) if e.speaker == "user"), None)
            said_at = reply.timestamp_ms if reply else now_ms
            record.add_turn(
                "auto", started_at_ms=said_at, completed_at_ms=now_ms, response_ms=now_ms - said_at
            )
        op_id = self._op(kind, record.call_id, waiter_id, listen_after=listen)
        pcid = self._pcid(live)
        out.append(self._persist(record))
        out.append(
            cmd.PlayTts(op_id=op_id, call_id=record.call_id, provider_call_id=pcid, text=text)
        )
        return out

    def _listen(self, live: _Live, state: CallState, token: str | None) -> list[Command]:
        self._set_state(live, state)
        record = live.record
        op_id = self._op("listen", record.call_id)
        return [
            self._persist(record),
            cmd.StartListening(
                op_id=op_id,
                call_id=record.call_id,
                provider_call_id=self._pcid(live),
                turn_token=token,
            ),
        ]

    def _stop_listening(self, live: _Live) -> list[Command]:
        pcid = live.record.provider_call_id
        if not pcid:
            return []
        op_id = self._op("stop-listen", live.record.call_id)
        return [cmd.StopListening(op_id=op_id, call_id=live.record.call_id, provider_call_id=pcid)]

    def _complete_turn(self, live: _Live, turn: _Turn, text: str, now_ms: int) -> list[Command]:
        record = live.record
        live.turn = None
        listen_start = (
            turn.listen_started_at_ms if turn.listen_started_at_ms is not None else now_ms
        )
        latency_ms = now_ms - turn.started_at_ms
        listen_wait_ms = now_ms - listen_start
        count = record.metadata.get("turnCount")
        record.metadata["turnCount"] = (count if isinstance(count, int) else 0) + 1
        record.metadata["lastTurnLatencyMs"] = latency_ms
        record.metadata["lastTurnListenWaitMs"] = listen_wait_ms
        record.metadata["lastTurnCompletedAt"] = now_ms
        record.add_turn(
            "continue",
            started_at_ms=turn.started_at_ms,
            completed_at_ms=now_ms,
            latency_ms=latency_ms,
            listen_wait_ms=listen_wait_ms,
        )
        return [
            cmd.CancelTimer(record.call_id, TimerKind.TRANSCRIPT),
            *self._stop_listening(live),
            cmd.LogMessage(
                "info",
                f"continue latency call={record.call_id} totalMs={latency_ms} "
                f"listenWaitMs={listen_wait_ms}",
            ),
            cmd.ResolveWaiter(turn.waiter_id, {"success": True, "transcript": text}),
        ]

    def _begin_end(
        self, live: _Live, reason: EndReason, now_ms: int, waiter_id: str | None
    ) -> list[Command]:
        if waiter_id is not None:
            live.end_waiters.append(waiter_id)
        if live.ending_op is not None:
            return []
        live.end_reason = reason
        pcid = live.record.provider_call_id
        if not pcid:
            waiters, live.end_waiters = live.end_waiters, []
            out = self._finalize(live, reason, now_ms)
            return out + [cmd.ResolveWaiter(w, {"success": True}) for w in waiters]
        live.ending_op = self._op("hangup", live.record.call_id)
        return [
            cmd.HangUp(op_id=live.ending_op, call_id=live.record.call_id, provider_call_id=pcid)
        ]

    def _finalize(self, live: _Live, reason: EndReason, now_ms: int) -> list[Command]:
        record = live.record
        call_id = record.call_id
        if is_terminal(record.state):
            return []
        record.state, _ = next_state(record.state, reason.state)
        record.end_reason = reason
        record.ended_at_ms = now_ms
        live.reply_id = None
        out: list[Command] = [
            cmd.CancelTimer(call_id, kind)
            for kind in TimerKind
            if kind is not TimerKind.STALE_REAPER
        ]
        if live.turn is not None:
            out.append(
                cmd.RejectWaiter(live.turn.waiter_id, f"Call ended: {reason.value}", "ended")
            )
            live.turn = None
        waiters, live.end_waiters = live.end_waiters, []
        out.extend(cmd.ResolveWaiter(w, {"success": True}) for w in waiters)
        self._active.pop(call_id, None)
        self._remember_ended(record)
        out.append(self._persist(record))
        return out


def _end_reason(raw: str) -> EndReason:
    try:
        return EndReason(raw)
    except ValueError:
        return EndReason.COMPLETED
