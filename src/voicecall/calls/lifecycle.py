"""The call manager's lifecycle: media streams, timers, restart recovery and shutdown.

SPEC §2.9: on start the calls of the previous run are taken back from their last snapshots
(checked with the carrier, or ended if they outlived ``maxDurationSeconds``); on stop every
waiter is rejected and the calls stay up for the next start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from voicecall.calls import commands as cmd
from voicecall.calls.book import DEDUPE_CAPACITY, CallBook
from voicecall.calls.commands import Command, TimerKind
from voicecall.calls.live import LiveCall
from voicecall.calls.record import CallRecord
from voicecall.calls.state import CallState, EndReason, is_terminal

__all__ = [
    "REAPER_CALL_ID",
    "REAPER_INTERVAL_MS",
    "STREAM_GRACE_MS",
    "TALK_EVENTS_KEPT",
    "CallLifecycle",
]

STREAM_GRACE_MS = 2000
TALK_EVENTS_KEPT = 10
REAPER_INTERVAL_MS = 30_000
REAPER_CALL_ID = ""


class CallLifecycle(CallBook):
    """Stream connects and closes, timer expiries, restore and stop."""

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

    def take_realtime_greeting(
        self, call_id: str, *, now_ms: int
    ) -> tuple[str | None, list[Command]]:
        """The realtime bridge's opening: ``metadata.initialMessage`` taken and deleted (§7.2).

        Unlike :meth:`claim_initial_message` no bot line is written: the model says the greeting
        in its own words, which come back as ``call.assistant-speech``.
        """
        live = self._active.get(call_id)
        if live is None or "initialMessage" not in live.record.metadata:
            return None, []
        message = live.record.metadata.pop("initialMessage")
        greeting = message if isinstance(message, str) and message else None
        return greeting, [self._persist(live.record)]

    def realtime_progress(
        self,
        call_id: str,
        *,
        now_ms: int,
        turn: tuple[int, int] | None = None,
        first_audio_ms: int | None = None,
    ) -> list[Command]:
        """A realtime turn ``(startedAt, completedAt)`` (§10.2) and/or the first-audio delay.

        ``metadata.realtimeFirstAudioMs`` is written once (the first value given).
        """
        live = self._active.get(call_id)
        if live is None:
            return []
        record = live.record
        changed = False
        if turn is not None:
            started, completed = turn
            record.add_turn(
                "realtime",
                started_at_ms=started,
                completed_at_ms=completed,
                response_ms=completed - started,
            )
            changed = True
        if first_audio_ms is not None and "realtimeFirstAudioMs" not in record.metadata:
            record.metadata["realtimeFirstAudioMs"] = first_audio_ms
            changed = True
        return [self._persist(record)] if changed else []

    def current_stream_id(self, call_id: str) -> str | None:
        """The id of the call's current media stream (None: none, or the call has ended)."""
        live = self._active.get(call_id)
        return live.stream_id if live is not None else None

    def talk_event(self, call_id: str, kind: str, *, now_ms: int) -> None:
        """Mirror a media/transcription event into ``metadata.recentTalkEvents`` (last 10).

        Not persisted by itself: the next snapshot of the call carries it.
        """
        live = self._active.get(call_id)
        if live is None:
            return
        metadata = live.record.metadata
        recent = metadata.get("recentTalkEvents")
        events = list(recent) if isinstance(recent, list) else []
        events.append({"type": kind, "at": now_ms})
        metadata["recentTalkEvents"] = events[-TALK_EVENTS_KEPT:]
        metadata["lastTalkEventAt"] = now_ms
        metadata["lastTalkEventType"] = kind

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
            live = LiveCall(record=record)
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
