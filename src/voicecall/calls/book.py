"""The call manager's shared state and the primitives every part of it builds commands with.

A :class:`CallBook` holds the live calls, the recently ended ones, the provider-id index, the
dedupe window and the outstanding carrier operations. The manager's parts (event intake,
operations, carrier results, lifecycle) are mixins over it; see ``manager.py``.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from voicecall.calls import commands as cmd
from voicecall.calls.commands import Command, TimerKind
from voicecall.calls.live import CarrierOp, LiveCall, Turn
from voicecall.calls.record import CallRecord
from voicecall.calls.state import CallState, EndReason, is_terminal, next_state
from voicecall.calls.status import call_status_payload, not_active_message
from voicecall.calls.turns import record_auto_turn, record_continue_turn
from voicecall.calls.view import CallView
from voicecall.errors import CallEndedError, CallError, UnknownCallError

__all__ = ["DEDUPE_CAPACITY", "MAX_ENDED_REMEMBERED", "CallBook"]

DEDUPE_CAPACITY = 10_000
MAX_ENDED_REMEMBERED = 1000


class CallBook:
    """Every call of one gateway, as plain data, and the helpers that change it."""

    def __init__(
        self,
        config: Any,
        *,
        webhook_url_configured: bool = True,
        supports_pre_connect_dtmf: bool = False,
        supports_inbound_queue: bool = False,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._config = config
        self._provider: str = str(config.provider)
        self._webhook_url_configured = webhook_url_configured
        self._supports_pre_connect_dtmf = supports_pre_connect_dtmf
        self._supports_inbound_queue = supports_inbound_queue
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self._active: dict[str, LiveCall] = {}
        self._ended: OrderedDict[str, CallRecord] = OrderedDict()
        self._by_provider_id: dict[str, str] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._ops: dict[str, CarrierOp] = {}
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

    def call_view(self, call_id: str) -> CallView | None:
        """A live call with the in-memory state carriers decide replies on (None once ended)."""
        live = self._active.get(call_id)
        if live is None:
            return None
        message = live.record.metadata.get("initialMessage")
        return CallView(
            record=live.record,
            turn_token=live.turn.token if live.turn is not None else None,
            has_waiter=live.turn is not None,
            stream_connected=live.stream_id is not None,
            queued=live.queued,
            initial_pending=bool(message) and not live.initial_in_flight,
        )

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

    # ---- primitives ------------------------------------------------------------------------

    def _check_running(self) -> None:
        if self._stopping:
            raise CallError("voicecall runtime is stopping")

    def _connected(self, call_id: str) -> LiveCall:
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

    def _pcid(self, live: LiveCall) -> str:
        pcid = live.record.provider_call_id
        if not pcid:
            raise CallError("call is not connected yet")
        return pcid

    def _op(self, kind: str, call_id: str, waiter_id: str | None = None, **extra: Any) -> str:
        op_id = self._new_id()
        self._ops[op_id] = CarrierOp(kind=kind, call_id=call_id, waiter_id=waiter_id, **extra)
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

    def _set_state(self, live: LiveCall, requested: CallState) -> None:
        live.record.state, _ = next_state(live.record.state, requested)

    def _arm_duration(self, live: LiveCall, from_ms: int) -> cmd.StartTimer:
        live.duration_timer_armed = True
        due = from_ms + self._config.max_duration_seconds * 1000
        return cmd.StartTimer(live.record.call_id, TimerKind.MAX_DURATION, due)

    def _notify_timer(self, live: LiveCall, now_ms: int) -> cmd.StartTimer:
        due = now_ms + self._config.outbound.notify_hangup_delay_sec * 1000
        return cmd.StartTimer(live.record.call_id, TimerKind.NOTIFY_HANGUP, due)

    def _play(
        self,
        live: LiveCall,
        text: str,
        kind: str,
        now_ms: int,
        *,
        waiter_id: str | None = None,
        listen: bool = False,
        stages: Mapping[str, int] | None = None,
        record_line: bool = True,
    ) -> list[Command]:
        record = live.record
        out: list[Command] = []
        if record.answered_at_ms is None:
            record.answered_at_ms = now_ms
            out.append(self._arm_duration(live, now_ms))
        self._set_state(live, CallState.SPEAKING)
        if record_line:
            record.add_transcript("bot", text, at_ms=now_ms)
        if kind == "auto":
            record_auto_turn(record, now_ms, stages)
        op_id = self._op(
            kind,
            record.call_id,
            waiter_id,
            listen_after=listen,
            transcript_index=len(record.transcript) - 1 if record_line else None,
            text=text,
        )
        pcid = self._pcid(live)
        out.append(self._persist(record))
        out.append(
            cmd.PlayTts(
                op_id=op_id, call_id=record.call_id, provider_call_id=pcid, text=text, kind=kind
            )
        )
        return out

    def _listen(self, live: LiveCall, state: CallState, token: str | None) -> list[Command]:
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

    def _stop_listening(self, live: LiveCall) -> list[Command]:
        pcid = live.record.provider_call_id
        if not pcid:
            return []
        op_id = self._op("stop-listen", live.record.call_id)
        return [cmd.StopListening(op_id=op_id, call_id=live.record.call_id, provider_call_id=pcid)]

    def _complete_turn(self, live: LiveCall, turn: Turn, text: str, now_ms: int) -> list[Command]:
        record = live.record
        live.turn = None
        latency_ms, listen_wait_ms = record_continue_turn(record, turn, now_ms)
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
        self, live: LiveCall, reason: EndReason, now_ms: int, waiter_id: str | None
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

    def _finalize(self, live: LiveCall, reason: EndReason, now_ms: int) -> list[Command]:
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
        if live.stream_id is not None:
            out.append(cmd.CloseStream(call_id, live.stream_id))
            live.stream_id = None
        self._active.pop(call_id, None)
        self._remember_ended(record)
        out.append(self._persist(record))
        out.extend(self._dequeue_next())
        return out

    def _dequeue_next(self) -> list[Command]:
        """Connect the longest-waiting queued inbound caller once a slot is free (FIFO)."""
        queued = [live for live in self._active.values() if live.queued]
        if not queued or self._stopping:
            return []
        connected = len(self._active) - len(queued)
        if connected >= self._config.max_concurrent_calls:
            return []
        live = min(queued, key=lambda c: c.record.started_at_ms)
        live.queued = False
        pcid = self._pcid(live)
        op_id = self._op("dequeue", live.record.call_id)
        return [
            cmd.LogMessage("info", f"dequeuing inbound call {live.record.call_id}"),
            cmd.DequeueCall(op_id=op_id, call_id=live.record.call_id, provider_call_id=pcid),
        ]

    # ---- provider ids and automatic replies ---------------------------------------------

    def _upgrade_provider_id(self, live: LiveCall, pcid: str | None) -> None:
        record = live.record
        if not pcid or pcid == record.provider_call_id:
            return
        if record.provider_call_id:
            self._by_provider_id.pop(record.provider_call_id, None)
        record.provider_call_id = pcid
        self._by_provider_id[pcid] = record.call_id

    def _auto_responds(self, record: CallRecord) -> bool:
        if self._realtime:
            return False
        return record.direction == "inbound" or record.mode == "conversation"

    def _request_reply(
        self, live: LiveCall, text: str, now_ms: int, *, caller_stopped_at_ms: int | None = None
    ) -> list[Command]:
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
                caller_stopped_at_ms=caller_stopped_at_ms,
            )
        ]
