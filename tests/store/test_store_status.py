"""status answered from the store: by callId, by providerCallId, or all live calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from voicecall.store.reports import read_records, status_from_store


def _record(call_id: str, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "callId": call_id,
        "provider": "twilio",
        "direction": "outbound",
        "state": state,
        "from": "+15550001234",
        "to": "+15550005678",
        "startedAt": 1000,
        "transcript": [{"timestamp": 1, "speaker": "bot", "text": "hi", "isFinal": True}],
        "processedEventIds": ["e1"],
        "metadata": {"mode": "conversation"},
        **extra,
    }


def _store(tmp_path: Path) -> Path:
    path = tmp_path / "calls.jsonl"
    records = [
        _record("a", "initiated"),
        _record("a", "answered", providerCallId="CA1", answeredAt=2000),
        _record("b", "listening", providerCallId="CA2"),
        {"call": _record("c", "ringing", providerCallId="CA3")},
        _record("b", "completed", providerCallId="CA2", endedAt=9000, endReason="completed"),
        _record("d", "failed", endedAt=3000, endReason="failed"),
    ]
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records) + b"{torn")
    return path


def test_status_by_call_id_returns_newest_snapshot_payload(tmp_path: Path) -> None:
    """A callId finds the newest snapshot, reduced to the status fields."""
    assert status_from_store(_store(tmp_path), call_id="a") == {
        "found": True,
        "call": {
            "callId": "a",
            "providerCallId": "CA1",
            "provider": "twilio",
            "direction": "outbound",
            "state": "answered",
            "from": "+15550001234",
            "to": "+15550005678",
            "startedAt": 1000,
            "answeredAt": 2000,
        },
    }


def test_status_falls_back_to_provider_call_id(tmp_path: Path) -> None:
    """An id that is no callId is looked up as providerCallId; sid does the same."""
    path = _store(tmp_path)
    by_id = status_from_store(path, call_id="CA2")
    assert by_id["call"]["callId"] == "b"
    assert by_id["call"]["endReason"] == "completed"
    assert status_from_store(path, sid="CA3")["call"]["state"] == "ringing"


def test_status_without_id_lists_non_terminal_calls(tmp_path: Path) -> None:
    """Without an id, every call whose last snapshot is not terminal is listed."""
    result = status_from_store(_store(tmp_path))
    assert result["found"] is True
    assert [call["callId"] for call in result["calls"]] == ["a", "c"]


def test_status_unknown_call_or_missing_store(tmp_path: Path) -> None:
    """An unknown id, or a store that does not exist, answers found false / no calls."""
    assert status_from_store(_store(tmp_path), call_id="zzz") == {"found": False}
    assert status_from_store(tmp_path / "none.jsonl", sid="CA1") == {"found": False}
    assert status_from_store(tmp_path / "none.jsonl") == {"found": True, "calls": []}


def test_read_records_unwraps_and_skips_junk(tmp_path: Path) -> None:
    """The shared reader yields every valid record in order, envelopes unwrapped."""
    records = list(read_records(_store(tmp_path)))
    assert [r["callId"] for r in records] == ["a", "a", "b", "c", "b", "d"]
