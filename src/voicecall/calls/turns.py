"""Turn metrics: what a finished `continue` turn or automatic reply writes into the record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voicecall.calls.live import Turn
from voicecall.calls.record import CallRecord, TranscriptEntry

__all__ = [
    "EARLY_STAGES",
    "REPLY_APOLOGY",
    "amend_auto_turn",
    "cut_bot_line",
    "insert_bot_line",
    "record_auto_turn",
    "record_continue_turn",
    "record_interrupted_turn",
]

REPLY_APOLOGY = "Sorry, I couldn't come up with an answer just now. Could you say that again?"
"""Said instead of an automatic reply whose model run failed or timed out (never silence)."""

EARLY_STAGES = ("callerStoppedAt", "firstTokenAt")
"""Stamps of an automatic turn known before its reply is spoken (epoch ms)."""


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


def record_auto_turn(
    record: CallRecord, now_ms: int, stages: Mapping[str, int] | None = None
) -> dict[str, Any]:
    """Count an automatic reply, timed from the caller's last line (or now, if none).

    ``stages`` adds the turn's earlier stamps (SPEC §10.2): ``callerStoppedAt`` (the caller's
    speech ended, from the stream's VAD) and ``firstTokenAt`` (the model's first text).
    """
    reply = next((e for e in reversed(record.transcript) if e.speaker == "user"), None)
    said_at = reply.timestamp_ms if reply else now_ms
    turn = record.add_turn(
        "auto", started_at_ms=said_at, completed_at_ms=now_ms, response_ms=now_ms - said_at
    )
    for key in EARLY_STAGES:
        value = (stages or {}).get(key)
        if isinstance(value, int):
            turn[key] = value
    return turn


def record_interrupted_turn(
    record: CallRecord, started_at_ms: int, stamps: Mapping[str, int], now_ms: int
) -> None:
    """An automatic reply cut off by the caller while the model was still writing it.

    Its stages are kept (the caller heard its start), ``interrupted`` marks it, and it is
    timed to its first frame like any streamed reply, or to now if no frame went out.
    """
    first_frame = stamps.get("firstFrameAt")
    completed = first_frame if isinstance(first_frame, int) else now_ms
    turn = record.add_turn(
        "auto",
        started_at_ms=started_at_ms,
        completed_at_ms=completed,
        response_ms=completed - started_at_ms,
    )
    for key in (*EARLY_STAGES, "firstAudioAt", "firstFrameAt"):
        value = stamps.get(key)
        if isinstance(value, int):
            turn[key] = value
    turn["interrupted"] = True


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
    """Cut the bot line ``said`` at ``index`` to what the caller heard (dropped if nothing).

    If lines were inserted before it meanwhile, the newest bot line saying ``said`` is cut.
    """
    if index is None or said == heard_text:
        return
    transcript = record.transcript
    if not (0 <= index < len(transcript) and _is_line(transcript[index], said)):
        index = next(
            (i for i in range(len(transcript) - 1, -1, -1) if _is_line(transcript[i], said)), None
        )
        if index is None:
            return
    entry = transcript[index]
    if heard_text:
        transcript[index] = entry.model_copy(update={"text": heard_text})
    else:
        del transcript[index]


def insert_bot_line(record: CallRecord, text: str, at_ms: int) -> None:
    """A bot line said at ``at_ms``, placed before any line recorded after that time."""
    record.add_transcript("bot", text, at_ms=at_ms)
    transcript = record.transcript
    index = len(transcript) - 1
    while index > 0 and transcript[index - 1].timestamp_ms > at_ms:
        transcript[index - 1], transcript[index] = transcript[index], transcript[index - 1]
        index -= 1


def _is_line(entry: TranscriptEntry, said: str) -> bool:
    return entry.speaker == "bot" and entry.text == said
