"""The latency report's auto-turn stages: each turn once, missing stages skipped, nearest rank."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.store.reports import format_latency, latency_report

STAGES = ("transcriptToReplyMs", "replyToFirstAudioMs", "firstAudioToFirstFrameMs")
ALL_STAGES = (
    "callerStoppedToTranscriptMs",
    "transcriptToFirstTokenMs",
    "transcriptToReplyMs",
    "firstTokenToFirstAudioMs",
    "replyToFirstAudioMs",
    "firstAudioToFirstFrameMs",
    "callerStoppedToFirstFrameMs",
)


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _auto(n: int, started: int, *stage_ms: int | None) -> dict[str, Any]:
    """An auto turn whose stamps follow ``started`` by the given stage durations (None = absent)."""
    turn: dict[str, Any] = {"n": n, "kind": "auto", "startedAt": started}
    at = started
    for key, step in zip(("replyAt", "firstAudioAt", "firstFrameAt"), stage_ms, strict=True):
        if step is None:
            continue
        at += step
        turn[key] = at
    if "firstFrameAt" in turn:
        turn["completedAt"] = turn["firstFrameAt"]
        turn["responseMs"] = turn["firstFrameAt"] - started
    return turn


def _call(call_id: str, turns: list[dict[str, Any]]) -> dict[str, Any]:
    return {"callId": call_id, "state": "listening", "metadata": {"turns": turns}}


def _oracle(values: list[int], percentile: int) -> int:
    """Nearest rank by its definition: the smallest value with at least p% of values at or below."""
    ordered = sorted(values)
    for value in ordered:
        if 100 * sum(1 for v in ordered if v <= value) >= percentile * len(ordered):
            return value
    raise AssertionError("unreachable")


def test_each_stage_is_summarized_from_the_turn_stamps(tmp_path: Path) -> None:
    """Two auto turns give each stage's count, min, max, average and percentiles."""
    records = [_call("a", [_auto(1, 10_000, 300, 120, 40), _auto(2, 20_000, 500, 80, 20)])]
    stages = latency_report(_write(tmp_path / "calls.jsonl", records))["stages"]
    assert set(stages) == set(ALL_STAGES)
    assert stages["transcriptToReplyMs"] == {
        "count": 2,
        "minMs": 300,
        "maxMs": 500,
        "avgMs": 400,
        "p50Ms": 300,
        "p90Ms": 500,
        "p95Ms": 500,
        "p99Ms": 500,
    }
    assert stages["replyToFirstAudioMs"]["avgMs"] == 100
    assert stages["firstAudioToFirstFrameMs"]["minMs"] == 20


def test_repeated_snapshots_count_each_turn_once(tmp_path: Path) -> None:
    """A turn persisted in many snapshots (and turns of other calls) count once each."""
    t1 = _auto(1, 1_000, 100, 50, 10)
    t2 = _auto(2, 5_000, 200, 60, 30)
    records = [
        _call("a", [t1]),
        _call("a", [t1]),
        _call("a", [t1, t2]),
        _call("a", [t1, t2]),
        _call("b", [_auto(1, 9_000, 300, 70, 50)]),
    ]
    report = latency_report(_write(tmp_path / "calls.jsonl", records))
    assert report["turnsCounted"] == 3
    assert [report["stages"][name]["count"] for name in STAGES] == [3, 3, 3]
    assert report["stages"]["transcriptToReplyMs"]["avgMs"] == 200


def test_missing_stamps_skip_only_their_stages(tmp_path: Path) -> None:
    """A turn without a stamp adds no sample to the stages that need it, and others are kept."""
    no_audio = _auto(1, 1_000, 250, None, None)  # carrier-native speech: reply only
    no_frame = _auto(2, 5_000, 150, 90, None)
    continued = {"n": 3, "kind": "continue", "startedAt": 0, "replyAt": 5, "latencyMs": 700}
    bogus = {"n": 4, "kind": "auto", "startedAt": "soon", "replyAt": 10, "firstAudioAt": True}
    records = [_call("a", [no_audio, no_frame, continued, bogus])]
    report = latency_report(_write(tmp_path / "calls.jsonl", records))
    stages = report["stages"]
    assert stages["transcriptToReplyMs"]["count"] == 2
    assert stages["transcriptToReplyMs"]["maxMs"] == 250
    assert stages["replyToFirstAudioMs"]["count"] == 1
    assert set(stages["firstAudioToFirstFrameMs"].values()) == {0}
    assert report["turnLatency"]["count"] == 1  # the §10.3 series are untouched by stages


def test_format_latency_prints_a_row_per_stage(tmp_path: Path) -> None:
    """The text table has one labelled row per stage after the §10.3 series."""
    records = [_call("a", [_auto(1, 1_000, 320, 110, 45)])]
    text = format_latency(latency_report(_write(tmp_path / "calls.jsonl", records)))
    rows = {line.split("  ")[0].strip(): line.split() for line in text.splitlines()[2:]}
    assert rows["transcript to reply"][-6:] == ["320"] * 6
    assert rows["reply to first audio"][-6:] == ["110"] * 6
    assert rows["first audio to first frame"][-6:] == ["45"] * 6
    assert list(rows)[:3] == ["turn latency", "listen wait", "response latency"]


def test_full_pipeline_stages_from_caller_stop_to_first_frame(tmp_path: Path) -> None:
    """With VAD and first-token stamps every stage of the turn is reported, in order."""
    turn = {
        "n": 1,
        "kind": "auto",
        "callerStoppedAt": 1_000,
        "startedAt": 1_250,
        "firstTokenAt": 1_600,
        "firstAudioAt": 1_780,
        "firstFrameAt": 1_800,
        "replyAt": 2_100,  # sentence streaming: the whole reply came after the first audio
    }
    report = latency_report(_write(tmp_path / "calls.jsonl", [_call("a", [turn])]))
    stages = report["stages"]
    assert stages["callerStoppedToTranscriptMs"]["p50Ms"] == 250
    assert stages["transcriptToFirstTokenMs"]["p50Ms"] == 350
    assert stages["firstTokenToFirstAudioMs"]["p50Ms"] == 180
    assert stages["firstAudioToFirstFrameMs"]["p50Ms"] == 20
    assert stages["callerStoppedToFirstFrameMs"]["p50Ms"] == 800
    assert stages["transcriptToReplyMs"]["p50Ms"] == 850
    # Audio before the whole reply is not a negative "reply to first audio" sample.
    assert stages["replyToFirstAudioMs"]["count"] == 0
    rows = [line.split("  ")[0].strip() for line in format_latency(report).splitlines()[2:]]
    assert rows[3:] == [
        "caller stopped to transcript",
        "transcript to first token",
        "transcript to reply",
        "first token to first audio",
        "reply to first audio",
        "first audio to first frame",
        "caller stopped to first frame",
    ]


stage_ms = st.integers(min_value=0, max_value=60_000)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(stage_ms, stage_ms, stage_ms), min_size=1, max_size=120))
def test_stage_percentiles_match_a_direct_nearest_rank(
    durations: list[tuple[int, int, int]],
) -> None:
    """Every stage's percentiles equal the nearest-rank definition computed directly."""
    turns = [_auto(n, 1_000 * n, *steps) for n, steps in enumerate(durations, start=1)]
    with tempfile.TemporaryDirectory() as tmp:
        stages = latency_report(_write(Path(tmp) / "calls.jsonl", [_call("a", turns)]))["stages"]
    for index, name in enumerate(STAGES):
        values = [steps[index] for steps in durations]
        assert stages[name]["count"] == len(values)
        assert stages[name]["minMs"] == min(values)
        assert stages[name]["maxMs"] == max(values)
        for percentile in (50, 90, 95, 99):
            assert stages[name][f"p{percentile}Ms"] == _oracle(values, percentile)
