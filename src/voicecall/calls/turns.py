"""Turn metrics: what a finished `continue` turn or automatic reply writes into the record."""

from __future__ import annotations

from voicecall.calls.live import Turn
from voicecall.calls.record import CallRecord

__all__ = ["record_auto_turn", "record_continue_turn"]


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
