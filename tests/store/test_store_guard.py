"""The 2 MiB size guard applied to every appended record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from voicecall.store import CallStore

MIB = 1024 * 1024


def _record(**extra: Any) -> dict[str, Any]:
    return {
        "callId": "big",
        "provider": "mock",
        "direction": "inbound",
        "state": "listening",
        "from": "+15550001234",
        "to": "+15550005678",
        "startedAt": 1,
        "transcript": [],
        "processedEventIds": [],
        **extra,
    }


def _entries(count: int, text_chars: int) -> list[dict[str, Any]]:
    return [
        {"timestamp": i, "speaker": "user", "text": f"{i}:" + "x" * text_chars, "isFinal": True}
        for i in range(count)
    ]


async def _round_trip(tmp_path: Path, record: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / "calls.jsonl"
    await CallStore(path).append(record)
    assert len(path.read_bytes()) <= 2 * MIB + 1
    return CallStore(path).load_latest()["big"]


async def test_small_records_are_stored_unchanged(tmp_path: Path) -> None:
    """A record under 2 MiB is stored exactly, without persistence notes."""
    record = _record(processedEventIds=[f"e{i}" for i in range(900)], metadata={"mode": "x"})
    assert await _round_trip(tmp_path, record) == record


async def test_large_transcript_keeps_last_twenty_entries(tmp_path: Path) -> None:
    """An oversized record keeps the newest 500 event ids and the last 20 transcript entries."""
    record = _record(
        transcript=_entries(100, 30_000),
        processedEventIds=[f"e{i}" for i in range(1200)],
        metadata={"mode": "conversation"},
    )
    stored = await _round_trip(tmp_path, record)
    assert stored["processedEventIds"] == [f"e{i}" for i in range(700, 1200)]
    assert stored["transcript"] == record["transcript"][-20:]
    assert stored["metadata"] == {
        "mode": "conversation",
        "voiceCallPersistence": {"transcriptTruncated": True, "originalTranscriptEntries": 100},
    }
    assert len(record["transcript"]) == 100


async def test_huge_entries_drop_the_whole_transcript(tmp_path: Path) -> None:
    """When even 20 entries are too large, the transcript is emptied and the count recorded."""
    stored = await _round_trip(tmp_path, _record(transcript=_entries(25, 150_000)))
    assert stored["transcript"] == []
    persistence = stored["metadata"]["voiceCallPersistence"]
    assert persistence == {"transcriptTruncated": True, "originalTranscriptEntries": 25}


async def test_huge_metadata_is_replaced(tmp_path: Path) -> None:
    """Oversized metadata is replaced by its small scalars and flagged metadataTruncated."""
    metadata = {
        "mode": "conversation",
        "turnCount": 3,
        "recordings": [{"url": "u" * 1000} for _ in range(3000)],
    }
    stored = await _round_trip(tmp_path, _record(transcript=_entries(2, 10), metadata=metadata))
    assert stored["transcript"] == []
    assert stored["metadata"] == {
        "mode": "conversation",
        "turnCount": 3,
        "voiceCallPersistence": {
            "transcriptTruncated": True,
            "originalTranscriptEntries": 2,
            "metadataTruncated": True,
        },
    }
    assert len(orjson.dumps(stored)) < 2 * MIB
