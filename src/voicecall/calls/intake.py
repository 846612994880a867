"""Carrier events into the call manager: dedupe, registration of unknown calls, state updates.

SPEC §2.4: an event is deduplicated, resolved to its call (or registers one: an outbound call
the carrier reports first, or an inbound call that passes the inbound policy), applied, and the
record persisted. Caller speech completes a `continue` turn or asks the agent for a reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicecall.calls import commands as cmd
from voicecall.calls.admission import match_route
from voicecall.calls.book import CallBook
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
from voicecall.calls.live import LiveCall
from voicecall.calls.policy import inbound_allowed
from voicecall.calls.record import CallRecord
from voicecall.calls.session_keys import session_key_for_call
from voicecall.calls.state import CallState, EndReason
from voicecall.calls.turns import REPLY_APOLOGY, insert_bot_line, record_interrupted_turn

__all__ = ["DTMF_COLLECT_MS", "EventIntake"]

DTMF_COLLECT_MS = 1500
NOTIFY_FALLBACK_GREETING = "Hello! How can I help you today?"
MAX_DTMF_RECEIVED_CHARS = 256

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


class EventIntake(CallBook):
    """Normalized carrier events and the agent's automatic replies in; commands out."""

    def handle_event(
        self, event: NormalizedEvent, *, now_ms: int, in_band_rejection: bool = False
    ) -> list[Command]:
        """Process one normalized carrier event (SPEC §2.4 steps 1–6).

        ``in_band_rejection``: the carrier's reply refuses a rejected caller itself, so no
        hangup is issued for that call, now or later (SPEC §12).
        """
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
            out.extend(self._handle_unknown(event, now_ms, in_band_rejection))
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

    def _resolve(self, event: NormalizedEvent) -> LiveCall | None:
        if event.call_id and event.call_id in self._active:
            return self._active[event.call_id]
        if event.provider_call_id:
            call_id = self._by_provider_id.get(event.provider_call_id)
            if call_id in self._active:
                return self._active[call_id]
        return None

    def _handle_unknown(
        self, event: NormalizedEvent, now_ms: int, in_band_rejection: bool
    ) -> list[Command]:
        pcid = event.provider_call_id
        ended_id = (event.call_id if event.call_id in self._ended else None) or (
            self._by_provider_id.get(pcid) if pcid else None
        )
        if ended_id is not None:
            record = self._ended.get(ended_id)
            if isinstance(event, RecordingReady) and record is not None:
                # Carriers report a recording once the call is over (Twilio, Plivo).
                _add_recording(record, event)
                return [self._persist(record)]
            if (
                record is not None
                and record.metadata.get("rejectionReason") == "inbound-policy"
                and record.provider_call_id
                and record.provider_call_id not in self._rejection_hangups
            ):
                return self._rejection_hangup(record, in_band_rejection)
            return []
        if not pcid or event.direction is None:
            return []
        if event.direction == "outbound":
            self._register(event, pcid, "outbound", now_ms, metadata={})
            return []
        return self._register_inbound(event, pcid, now_ms, in_band_rejection)

    def _register_inbound(
        self, event: NormalizedEvent, pcid: str, now_ms: int, in_band_rejection: bool
    ) -> list[Command]:
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
            return out + self._rejection_hangup(record, in_band_rejection)
        route = match_route(config.numbers, event.to_number)
        metadata: dict[str, Any] = {"mode": "conversation"}
        greeting = (route[1].inbound_greeting if route else None) or config.inbound_greeting
        metadata["initialMessage"] = greeting or NOTIFY_FALLBACK_GREETING
        if route:
            metadata["numberRouteKey"] = route[0]
        agent_id = (route[1].agent_id if route else None) or config.agent_id
        at_capacity = self.active_call_count >= config.max_concurrent_calls
        live = self._register(event, pcid, "inbound", now_ms, metadata=metadata, agent_id=agent_id)
        if at_capacity and self._supports_inbound_queue:
            live.queued = True
            return [cmd.LogMessage("info", f"queued inbound call {live.record.call_id}")]
        return []

    def _rejection_hangup(self, record: CallRecord, in_band: bool = False) -> list[Command]:
        pcid = record.provider_call_id
        if not pcid:
            return []
        # The reservation: one carrier-side rejection per call, in band or by one hangup.
        self._rejection_hangups.add(pcid)
        if in_band:
            return []
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
    ) -> LiveCall:
        record = self._new_record(
            event, pcid, direction, now_ms, metadata=metadata, agent_id=agent_id
        )
        live = self._active[record.call_id] = LiveCall(record=record)
        self._by_provider_id[pcid] = record.call_id
        return live

    def _apply(self, live: LiveCall, event: NormalizedEvent, now_ms: int) -> list[Command]:
        record = live.record
        out: list[Command] = []
        requested = _EVENT_STATES.get(type(event))
        if requested is not None:
            self._set_state(live, requested)
        if isinstance(event, CallAnswered):
            if record.answered_at_ms is None:
                record.answered_at_ms = event.timestamp_ms or now_ms
                sequence = record.metadata.get("dtmfSequence")
                if isinstance(sequence, str) and sequence:
                    # every carrier dials the pre-connect sequence as the call connects (§3.5)
                    record.metadata.setdefault("dtmfSent", sequence)
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
            _add_recording(record, event)
        elif isinstance(event, CallEnded):
            reason = _end_reason(event.reason)
            if live.ending_op is not None and reason is EndReason.COMPLETED:
                # the carrier reports the end our own hangup caused, possibly before the
                # hangup request's reply: the call ends for our reason (hangup-bot, timeout)
                reason = live.end_reason
            out.extend(self._finalize(live, reason, now_ms))
        elif isinstance(event, CallErrored) and not event.retryable:
            out.append(cmd.LogMessage("warning", f"call {record.call_id} error: {event.error}"))
            out.extend(self._finalize(live, EndReason.ERROR, now_ms))
        return out

    def _on_answered(self, live: LiveCall, now_ms: int) -> list[Command]:
        mode = live.record.mode or "conversation"
        speakers = _SPEAKS_ON_ANSWER.get(mode, frozenset())
        # notify calls never open media streams (SPEC §2.5): they speak on answer regardless
        streamed = self._uses_media_streams and mode != "notify"
        if streamed or self._provider not in speakers:
            return []
        message = live.record.metadata.get("initialMessage")
        if isinstance(message, str) and message:
            return self._speak_initial(live, message, now_ms)
        if mode == "notify":
            return [self._notify_timer(live, now_ms)]
        return self._listen(live, CallState.LISTENING, None)

    def _speak_initial(self, live: LiveCall, message: str, now_ms: int) -> list[Command]:
        if live.initial_in_flight or not live.record.provider_call_id:
            return []
        live.initial_in_flight = True
        return self._play(live, message, "initial", now_ms)

    def claim_initial_message(
        self, call_id: str, *, now_ms: int
    ) -> tuple[str | None, list[Command]]:
        """Hand the pending initial message/greeting to a carrier that speaks it in its reply.

        The message is taken from metadata and recorded as spoken (bot transcript entry,
        ``answeredAt`` and the duration timer if missing); the call is then ``listening`` because
        the carrier's document listens right after it (Twilio T-SPEAK). None if there is nothing
        pending or it is already being played.
        """
        live = self._active.get(call_id)
        if live is None or live.initial_in_flight:
            return None, []
        record = live.record
        message = record.metadata.get("initialMessage")
        if not isinstance(message, str) or not message:
            return None, []
        out: list[Command] = []
        if record.answered_at_ms is None:
            record.answered_at_ms = now_ms
            out.append(self._arm_duration(live, now_ms))
        del record.metadata["initialMessage"]
        record.add_transcript("bot", message, at_ms=now_ms)
        self._set_state(live, CallState.LISTENING)
        out.append(self._persist(record))
        return message, out

    def stream_ready(
        self, call_id: str, stream_id: str, *, now_ms: int
    ) -> tuple[str | None, list[Command]]:
        """The current stream's transcription is ready: the initial message is due now (§2.5).

        It is played on the stream (a ``PlayTts`` of kind ``initial``; removed from metadata
        once played, left pending if playback fails). Returns the message, or None when nothing
        is pending, it is already playing, or ``stream_id`` is not the call's current stream.
        """
        live = self._active.get(call_id)
        if live is None or live.stream_id != stream_id or live.initial_in_flight:
            return None, []
        message = live.record.metadata.get("initialMessage")
        if not isinstance(message, str) or not message:
            return None, []
        out = self._speak_initial(live, message, now_ms)
        return (message, out) if out else (None, [])

    def invalidate_reply(self, call_id: str) -> bool:
        """The caller started speaking (barge-in): an in-flight automatic reply is now stale."""
        live = self._active.get(call_id)
        if live is None or live.reply_id is None:
            return False
        live.reply_id = None
        return True

    def _on_speech(self, live: LiveCall, event: SpeechReceived, now_ms: int) -> list[Command]:
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
            stopped = event.speech_ended_at_ms
            out.extend(self._request_reply(live, text, now_ms, caller_stopped_at_ms=stopped))
        return out

    def _on_dtmf(self, live: LiveCall, event: DtmfReceived, now_ms: int) -> list[Command]:
        record = live.record
        received = str(record.metadata.get("dtmfReceived", "")) + event.digits
        record.metadata["dtmfReceived"] = received[-MAX_DTMF_RECEIVED_CHARS:]
        if live.turn is not None or not self._auto_responds(record):
            return []
        live.reply_id = None
        live.dtmf_buffer += event.digits
        due = now_ms + DTMF_COLLECT_MS
        return [cmd.StartTimer(record.call_id, TimerKind.DTMF_COLLECT, due)]

    def auto_reply_ready(
        self,
        call_id: str,
        reply_id: str,
        spoken: str,
        *,
        now_ms: int,
        error: str | None = None,
        stages: Mapping[str, int] | None = None,
        apologize: bool = True,
    ) -> list[Command]:
        """The agent's reply to a caller turn; stale or empty replies are not spoken.

        A failed or timed-out run is answered with :data:`REPLY_APOLOGY` (unless
        ``apologize`` is False: no runner is configured) so the caller hears something instead
        of silence, and the call keeps listening. ``stages``: the turn's early stamps
        (``callerStoppedAt``, ``firstTokenAt``) for ``metadata.turns``.
        """
        live = self._active.get(call_id)
        if live is None or live.reply_id != reply_id:
            return [cmd.LogMessage("info", "discarding superseded automatic reply")]
        live.reply_id = None
        if not live.record.provider_call_id:
            return []
        if error is not None:
            failed = cmd.LogMessage("warning", f"auto-response failed for {call_id}: {error}")
            if not apologize:
                return [failed]
            return [failed, *self._play(live, REPLY_APOLOGY, "apology", now_ms, listen=True)]
        if not spoken.strip():
            return []
        return self._play(live, spoken, "auto", now_ms, listen=True, stages=stages)

    def reply_interrupted(
        self,
        call_id: str,
        heard_text: str,
        *,
        started_at_ms: int,
        stamps: Mapping[str, int],
        now_ms: int,
    ) -> list[Command]:
        """A reply spoken while the model still wrote it was cut off by caller speech.

        What the caller heard of it becomes the bot's line (placed before the caller's
        interruption), and its turn is counted with its stages and ``interrupted: true``.
        """
        live = self._active.get(call_id)
        if live is None:
            return []
        record = live.record
        first_frame = stamps.get("firstFrameAt")
        if heard_text:
            insert_bot_line(record, heard_text, first_frame or now_ms)
        record_interrupted_turn(record, started_at_ms, stamps, now_ms)
        return [self._persist(record)]


def _add_recording(record: CallRecord, event: RecordingReady) -> None:
    entry: dict[str, Any] = {"sid": event.sid, "url": event.url}
    if event.duration_sec is not None:
        entry["durationSec"] = event.duration_sec
    if event.status is not None:
        entry["status"] = event.status
    record.metadata.setdefault("recordings", []).append(entry)


def _end_reason(raw: str) -> EndReason:
    try:
        return EndReason(raw)
    except ValueError:
        return EndReason.COMPLETED
