"""The latency report: each turn counted once, exact shape, nearest-rank percentiles."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.store.test_store_latency_stages import ALL_STAGES

from voicecall.store.reports import format_latency, latency_report

ZERO = {
    "count": 0,
    "minMs": 0,
    "maxMs": 0,
    "avgMs": 0,
    "p50Ms": 0,
    "p90Ms": 0,
    "p95Ms": 0,
    "p99Ms": 0,
}


def _write(path: Path, records: list[Any], *, tail: bytes = b"") -> Path:
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for r in records]
    path.write_bytes(b"".join(line + b"\n" for line in lines) + tail)
    return path


def _turn(n: int, kind: str = "continue", **values: Any) -> dict[str, Any]:
    return {"n": n, "kind": kind, "startedAt": 1000 * n, "completedAt": 1000 * n + 500, **values}


def _with_turns(call_id: str, turns: list[dict[str, Any]], **legacy: Any) -> dict[str, Any]:
    return {"callId": call_id, "state": "listening", "metadata": {"turns": turns, **legacy}}


def _legacy(call_id: str, **metadata: Any) -> dict[str, Any]:
    return {"callId": call_id, "state": "listening", "metadata": metadata}


def test_empty_or_missing_file_reports_zeros(tmp_path: Path) -> None:
    """No records gives the full shape filled with zeros."""
    expected = {
        "recordsScanned": 0,
        "turnsCounted": 0,
        "turnLatency": ZERO,
        "listenWait": ZERO,
        "responseLatency": ZERO,
        "stages": dict.fromkeys(ALL_STAGES, ZERO),
    }
    assert latency_report(tmp_path / "absent.jsonl") == expected
    assert latency_report(_write(tmp_path / "empty.jsonl", [])) == expected


def test_repeated_snapshots_of_a_three_turn_call_count_three_turns(tmp_path: Path) -> None:
    """Five snapshots of one call whose turns grow to three count exactly three turns."""
    t1 = _turn(1, latencyMs=100, listenWaitMs=40)
    t2 = _turn(2, latencyMs=300, listenWaitMs=60)
    t3 = _turn(3, latencyMs=200, listenWaitMs=50)
    snapshots = [
        _with_turns("c", [t1], lastTurnLatencyMs=100),
        _with_turns("c", [t1, t2], lastTurnLatencyMs=300),
        _with_turns("c", [t1, t2], lastTurnLatencyMs=300),
        _with_turns("c", [t1, t2, t3], lastTurnLatencyMs=200),
        _with_turns("c", [t1, t2, t3], lastTurnLatencyMs=200),
    ]
    report = latency_report(_write(tmp_path / "calls.jsonl", snapshots))
    assert report == {
        "recordsScanned": 5,
        "turnsCounted": 3,
        "turnLatency": {
            "count": 3,
            "minMs": 100,
            "maxMs": 300,
            "avgMs": 200,
            "p50Ms": 200,
            "p90Ms": 300,
            "p95Ms": 300,
            "p99Ms": 300,
        },
        "listenWait": {
            "count": 3,
            "minMs": 40,
            "maxMs": 60,
            "avgMs": 50,
            "p50Ms": 50,
            "p90Ms": 60,
            "p95Ms": 60,
            "p99Ms": 60,
        },
        "responseLatency": ZERO,
        "stages": dict.fromkeys(ALL_STAGES, ZERO),
    }


def test_turns_are_a_union_over_truncated_snapshots(tmp_path: Path) -> None:
    """Turns dropped from later snapshots (kept last 200) still count, once each."""
    snapshots = [
        _with_turns("c", [_turn(1, latencyMs=10), _turn(2, latencyMs=20)]),
        _with_turns("c", [_turn(2, latencyMs=20), _turn(3, latencyMs=30)]),
        _with_turns("d", [_turn(1, latencyMs=40)]),
    ]
    report = latency_report(_write(tmp_path / "calls.jsonl", snapshots))
    assert report["turnsCounted"] == 4
    assert report["turnLatency"]["count"] == 4
    assert report["turnLatency"]["avgMs"] == 25


def test_auto_and_realtime_turns_feed_response_latency(tmp_path: Path) -> None:
    """responseMs of auto and realtime turns forms responseLatency, apart from continue turns."""
    turns = [
        _turn(1, "auto", responseMs=700),
        _turn(2, "realtime", responseMs=900),
        _turn(3, "continue", latencyMs=1500, listenWaitMs=1100),
    ]
    report = latency_report(_write(tmp_path / "calls.jsonl", [_with_turns("c", turns)]))
    assert report["turnsCounted"] == 3
    assert report["responseLatency"]["count"] == 2
    assert report["responseLatency"]["minMs"] == 700
    assert report["responseLatency"]["avgMs"] == 800
    assert report["turnLatency"]["count"] == 1
    assert report["listenWait"]["maxMs"] == 1100


def test_legacy_records_are_deduplicated_by_completed_at(tmp_path: Path) -> None:
    """Legacy lastTurn* fields repeated across snapshots count once per callId+completedAt."""
    records = [
        _legacy("a", lastTurnLatencyMs=100, lastTurnListenWaitMs=10, lastTurnCompletedAt=5000),
        _legacy("a", lastTurnLatencyMs=100, lastTurnListenWaitMs=10, lastTurnCompletedAt=5000),
        _legacy("a", lastTurnLatencyMs=300, lastTurnListenWaitMs=30, lastTurnCompletedAt=9000),
        _legacy("b", lastTurnLatencyMs=100, lastTurnListenWaitMs=10, lastTurnCompletedAt=5000),
        # No completedAt: falls back to turnCount.
        _legacy("c", lastTurnLatencyMs=500, turnCount=1),
        _legacy("c", lastTurnLatencyMs=500, turnCount=1),
        _legacy("c", lastTurnLatencyMs=700, turnCount=2),
    ]
    report = latency_report(_write(tmp_path / "calls.jsonl", records))
    assert report["recordsScanned"] == 7
    assert report["turnsCounted"] == 5
    assert report["turnLatency"]["count"] == 5
    assert report["turnLatency"]["avgMs"] == 340
    assert report["listenWait"]["count"] == 3


def test_records_with_turns_ignore_their_legacy_fields(tmp_path: Path) -> None:
    """A record with metadata.turns does not also count its lastTurn* fields; mixing works."""
    records = [
        _with_turns(
            "new",
            [_turn(1, latencyMs=50)],
            lastTurnLatencyMs=50,
            lastTurnCompletedAt=1500,
        ),
        _legacy("old", lastTurnLatencyMs=150, lastTurnCompletedAt=7000),
    ]
    report = latency_report(_write(tmp_path / "calls.jsonl", records))
    assert report["turnsCounted"] == 2
    assert report["turnLatency"]["count"] == 2
    assert (report["turnLatency"]["minMs"], report["turnLatency"]["maxMs"]) == (50, 150)


def test_last_limits_the_window_of_valid_records(tmp_path: Path) -> None:
    """--last N reads only the newest N valid records; malformed lines do not use up the window."""
    records: list[Any] = [
        _legacy(f"c{i}", lastTurnLatencyMs=i * 10, lastTurnCompletedAt=i) for i in range(1, 6)
    ]
    records.insert(4, b"{broken")
    records.insert(5, b"")
    path = _write(tmp_path / "calls.jsonl", records, tail=b'{"callId":"torn","meta')
    report = latency_report(path, last=2)
    assert report["recordsScanned"] == 2
    assert report["turnLatency"]["minMs"] == 40
    assert report["turnLatency"]["maxMs"] == 50
    assert latency_report(path, last=0)["recordsScanned"] == 1
    assert latency_report(path)["recordsScanned"] == 5


def test_only_finite_numbers_count(tmp_path: Path) -> None:
    """Strings, booleans, nulls, NaN and infinities are not latency samples."""
    records: list[Any] = [
        _legacy("a", lastTurnLatencyMs="120", lastTurnCompletedAt=1),
        _legacy("b", lastTurnLatencyMs=True, lastTurnCompletedAt=1),
        _legacy("c", lastTurnLatencyMs=None, lastTurnCompletedAt=1),
        b'{"callId":"d","metadata":{"lastTurnLatencyMs":NaN,"lastTurnCompletedAt":1}}',
        b'{"callId":"e","metadata":{"turns":[{"n":1,"kind":"auto","responseMs":Infinity}]}}',
        _legacy("f", lastTurnLatencyMs=250.5, lastTurnCompletedAt=1),
    ]
    report = latency_report(_write(tmp_path / "calls.jsonl", records))
    assert report["recordsScanned"] == 6
    assert report["turnsCounted"] == 1
    assert report["turnLatency"]["count"] == 1
    assert report["turnLatency"]["minMs"] == 250.5
    assert report["turnLatency"]["avgMs"] == 251
    assert report["responseLatency"] == ZERO


def test_envelopes_count_like_raw_records(tmp_path: Path) -> None:
    """Records inside {"call":…} and version-2 envelopes are read like raw records."""
    records = [
        {"call": _legacy("a", lastTurnLatencyMs=10, lastTurnCompletedAt=1)},
        {"version": 2, "call": _with_turns("b", [_turn(1, latencyMs=30)]), "sequence": 1},
    ]
    report = latency_report(_write(tmp_path / "calls.jsonl", records))
    assert report["turnsCounted"] == 2
    assert report["turnLatency"]["avgMs"] == 20


def _oracle_percentile(values: list[int], percentile: int) -> int:
    """Nearest rank by definition: the least value with at least p% of samples at or below."""
    return min(
        v for v in values if 100 * sum(1 for w in values if w <= v) >= percentile * len(values)
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=60))
def test_percentiles_match_nearest_rank_definition(values: list[int]) -> None:
    """p50/p90/p95/p99, min, max and the half-up rounded average match a direct computation."""
    records = [
        _legacy(f"c{i}", lastTurnLatencyMs=value, lastTurnCompletedAt=i)
        for i, value in enumerate(values)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        stats = latency_report(_write(Path(tmp) / "calls.jsonl", records), last=1000)["turnLatency"]
    assert stats["count"] == len(values)
    assert stats["minMs"] == min(values)
    assert stats["maxMs"] == max(values)
    assert stats["avgMs"] == math.floor(sum(values) / len(values) + 0.5)
    for percentile in (50, 90, 95, 99):
        assert stats[f"p{percentile}Ms"] == _oracle_percentile(values, percentile)


def test_format_latency_shows_every_series_and_statistic(tmp_path: Path) -> None:
    """The text table names each series with its count and percentiles."""
    turns = [_turn(1, latencyMs=120, listenWaitMs=80), _turn(2, "auto", responseMs=640)]
    text = format_latency(latency_report(_write(tmp_path / "c.jsonl", [_with_turns("c", turns)])))
    assert "turns counted: 2" in text
    header = next(line for line in text.splitlines() if line.startswith("series"))
    assert header.split() == ["series", "count", "min", "max", "avg", "p50", "p90", "p95", "p99"]
    rows = {line.split("  ")[0].strip(): line.split() for line in text.splitlines()[2:]}
    assert rows["turn latency"][-6:] == ["120"] * 6
    assert rows["response latency"][-6:] == ["640"] * 6
    assert rows["listen wait"][2] == "1"
