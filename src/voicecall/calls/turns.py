"""Turn metrics: what a finished `continue` turn or automatic reply writes into the record."""

from __future__ import annotations

from collections.abc import Mapping

from voicecall.calls.live import Turn
from voicecall.calls.record import CallRecord

__all__ = ["amend_auto_turn", "cut_bot_line", "record_auto_turn", "record_continue_turn"]


def record_continue_turn(record: CallRecord, turn: Turn, now_ms: int) -> tuple[int, int]:
    """Count a completed `continue` turn; returns its (latency_ms, listen_wait_ms)."""
    listen_start = turn.listen_started_at_ms if turn.listen_started_at_ms is not None else now_ms
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
    return latency_ms, listen_wait_ms


def record_auto_turn(record: CallRecord, now_ms: int) -> None:
    """Count an automatic reply, timed from the caller's last line (or now, if none)."""
    reply = next((e for e in reversed(record.transcript) if e.speaker == "user"), None)
    said_at = reply.timestamp_ms if reply else now_ms
    record.add_turn(
        "auto", started_at_ms=said_at, completed_at_ms=now_ms, response_ms=now_ms - said_at
    )


def amend_auto_turn(record: CallRecord, timings: Mapping[str, int]) -> None:
    """Time the newest automatic turn by its stream stages (SPEC §10.2).

    ``startedAt`` stays the caller's final transcript; ``replyAt`` is when the reply was ready
    (the old completion), ``firstAudioAt`` the first synthesized audio, ``firstFrameAt`` the
    first reply frame sent to the carrier, which becomes ``completedAt`` and sets ``responseMs``.
    """
    turns = record.metadata.get("turns")
    if not isinstance(turns, list):
        return
    turn = next(
        (t for t in reversed(turns) if isinstance(t, dict) and t.get("kind") == "auto"), None
    )
    if turn is None or "firstFrameAt" in turn:
        return
    first_frame = timings.get("firstFrameAt")
    turn["replyAt"] = turn.get("completedAt")
    for key in ("firstAudioAt", "firstFrameAt"):
        if key in timings:
            turn[key] = timings[key]
    started = turn.get("startedAt")
    if first_frame is not None and isinstance(started, int):
        turn["completedAt"] = first_frame
        turn["responseMs"] = first_frame - started


def cut_bot_line(record: CallRecord, index: int | None, said: str, heard_text: str) -> None:
    """Cut the bot line ``said`` at ``index`` to what the caller heard (dropped if nothing)."""
    if index is None or not 0 <= index < len(record.transcript) or said == heard_text:
        return
    entry = record.transcript[index]
    if entry.speaker != "bot" or entry.text != said:
        return
    if heard_text:
        record.transcript[index] = entry.model_copy(update={"text": heard_text})
    else:
        del record.transcript[index]
