"""Carrier results: each finished carrier command resolves its waiter and moves its call on.

A command goes out under an ``op_id``; :meth:`CarrierResults.carrier_result` looks the
operation up and dispatches on its kind to the ``_done_<kind>`` handler below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicecall.calls import commands as cmd
from voicecall.calls.book import CallBook
from voicecall.calls.commands import Command, TimerKind
from voicecall.calls.live import CarrierOp, LiveCall
from voicecall.calls.state import CallState, EndReason
from voicecall.calls.turns import amend_auto_turn, cut_bot_line

__all__ = ["CarrierResults"]

_PLAY_KINDS = frozenset({"initial", "speak", "turn", "auto", "apology"})


class CarrierResults(CallBook):
    """What the I/O pump reports back about the carrier commands it ran."""

    def carrier_result(
        self,
        op_id: str,
        *,
        now_ms: int,
        error: str | None = None,
        provider_call_id: str | None = None,
        gone: bool = False,
        terminal: bool | None = None,
        heard_text: str | None = None,
        timings: Mapping[str, int] | None = None,
        apology: str | None = None,
    ) -> list[Command]:
        """A carrier command finished; ``error`` is its failure text, ``gone`` a 404 hangup.

        Playback on a media stream also reports ``heard_text`` (what the caller heard before a
        barge-in cut it off; the bot's line is cut to it) and ``timings`` (epoch-ms stage
        stamps ``firstAudioAt``/``firstFrameAt``; an automatic reply's turn is timed by them)
        and ``apology``: what the caller heard of the apology played after its TTS failed.
        """
        op = self._ops.pop(op_id, None)
        if op is None:
            return []
        live = self._active.get(op.call_id)
        if live is not None and op.kind in _PLAY_KINDS:
            record = live.record
            if heard_text is not None:
                cut_bot_line(record, op.transcript_index, op.text, heard_text)
            if timings and op.kind == "auto":
                amend_auto_turn(record, timings)
            if apology:
                record.add_transcript("bot", apology, at_ms=now_ms)
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
        op: CarrierOp,
        live: LiveCall | None,
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
        self,
        op: CarrierOp,
        live: LiveCall | None,
        *,
        now_ms: int,
        error: str | None,
        gone: bool,
        **_: Any,
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
        self, op: CarrierOp, live: LiveCall | None, *, error: str | None, **_: Any
    ) -> list[Command]:
        record = self._ended.get(op.call_id)
        if error is not None and record is not None and record.provider_call_id:
            # Release the reservation so a later webhook for this call retries the hangup.
            self._rejection_hangups.discard(record.provider_call_id)
            return [cmd.LogMessage("warning", f"rejecting inbound call failed: {error}")]
        return []

    def _done_restore_hangup(
        self, op: CarrierOp, live: LiveCall | None, *, error: str | None, **_: Any
    ) -> list[Command]:
        if error is not None:
            return [
                cmd.LogMessage("warning", f"hangup of restored call {op.call_id} failed: {error}")
            ]
        return []

    def _done_dequeue(
        self, op: CarrierOp, live: LiveCall | None, *, error: str | None, **_: Any
    ) -> list[Command]:
        if error is not None:
            return [
                cmd.LogMessage("warning", f"dequeuing inbound call {op.call_id} failed: {error}")
            ]
        return []

    def _done_dtmf(
        self, op: CarrierOp, live: LiveCall | None, *, error: str | None, **_: Any
    ) -> list[Command]:
        assert op.waiter_id is not None
        if error is not None:
            return [cmd.RejectWaiter(op.waiter_id, error)]
        return [cmd.ResolveWaiter(op.waiter_id, {"success": True})]

    def _done_listen(
        self, op: CarrierOp, live: LiveCall | None, *, error: str | None, **_: Any
    ) -> list[Command]:
        if error is not None:
            return [cmd.LogMessage("warning", f"listening on {op.call_id} failed: {error}")]
        return []

    _done_stop_listen = _done_listen

    def _done_status(
        self,
        op: CarrierOp,
        live: LiveCall | None,
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
        self, op: CarrierOp, live: LiveCall | None, *, now_ms: int, error: str | None, **_: Any
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
    _done_apology = _done_play
