"""The ``voicecall latency`` report: every turn counted once, nearest-rank percentiles (§10.3)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from voicecall.store.records import read_records

__all__ = ["PERCENTILES", "format_latency", "latency_report", "nearest_rank", "summarize"]

PERCENTILES = (50, 90, 95, 99)
_SERIES = ("turnLatency", "listenWait", "responseLatency")
_SERIES_LABELS = {
    "turnLatency": "turn latency",
    "listenWait": "listen wait",
    "responseLatency": "response latency",
}
# Auto-turn stages (§10.2 stamps): name -> (from stamp, to stamp, table label), in the order of
# a turn: the caller stops (VAD), the final transcript arrives (startedAt), the model's first
# text, the whole reply, the first synthesized audio, the first frame sent to the carrier.
_STAGES = {
    "callerStoppedToTranscriptMs": ("callerStoppedAt", "startedAt", "caller stopped to transcript"),
    "transcriptToFirstTokenMs": ("startedAt", "firstTokenAt", "transcript to first token"),
    "transcriptToReplyMs": ("startedAt", "replyAt", "transcript to reply"),
    "firstTokenToFirstAudioMs": ("firstTokenAt", "firstAudioAt", "first token to first audio"),
    "replyToFirstAudioMs": ("replyAt", "firstAudioAt", "reply to first audio"),
    "firstAudioToFirstFrameMs": ("firstAudioAt", "firstFrameAt", "first audio to first frame"),
    "callerStoppedToFirstFrameMs": (
        "callerStoppedAt",
        "firstFrameAt",
        "caller stopped to first frame",
    ),
}
_STAT_KEYS = ("count", "minMs", "maxMs", "avgMs", "p50Ms", "p90Ms", "p95Ms", "p99Ms")


def _finite(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def nearest_rank(sorted_values: Sequence[float | int], percentile: int) -> float | int:
    """The nearest-rank percentile ``sorted[ceil(p/100·n) − 1]`` of a non-empty sorted sequence."""
    count = len(sorted_values)
    # Integer ceiling: exact for every n, unlike ceil() over a float product.
    rank = (percentile * count + 99) // 100
    return sorted_values[max(rank, 1) - 1]


def summarize(samples: Iterable[float | int]) -> dict[str, float | int]:
    """count, min, max, rounded average and p50/p90/p95/p99 in ms; all zeros when empty."""
    values = sorted(samples)
    if not values:
        return dict.fromkeys(_STAT_KEYS, 0)
    summary: dict[str, float | int] = {
        "count": len(values),
        "minMs": values[0],
        "maxMs": values[-1],
        # Half up, as the reference's Math.round does (Python's round() is half-to-even).
        "avgMs": math.floor(math.fsum(values) / len(values) + 0.5),
    }
    for percentile in PERCENTILES:
        summary[f"p{percentile}Ms"] = nearest_rank(values, percentile)
    return summary


class _Samples:
    """Turn samples keyed so that each turn contributes once however often it was persisted."""

    def __init__(self) -> None:
        self.turns: dict[tuple[str, int], Mapping[str, Any]] = {}
        self.legacy: dict[tuple[Any, ...], tuple[float | int | None, float | int | None]] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        metadata = record.get("metadata")
        if not isinstance(metadata, Mapping):
            return
        call_id = record["callId"]
        turns = metadata.get("turns")
        if isinstance(turns, list):
            for turn in turns:
                if not isinstance(turn, Mapping):
                    continue
                n = turn.get("n")
                if isinstance(n, int) and not isinstance(n, bool):
                    self.turns[(call_id, n)] = turn
            return
        latency = _finite(metadata.get("lastTurnLatencyMs"))
        listen_wait = _finite(metadata.get("lastTurnListenWaitMs"))
        if latency is None and listen_wait is None:
            return
        completed_at = _finite(metadata.get("lastTurnCompletedAt"))
        if completed_at is not None:
            key: tuple[Any, ...] = (call_id, "completedAt", completed_at)
        elif (turn_count := _finite(metadata.get("turnCount"))) is not None:
            key = (call_id, "turnCount", turn_count)
        else:
            # Nothing identifies the turn; identical repeated snapshots still count once.
            key = (call_id, "values", latency, listen_wait)
        self.legacy.setdefault(key, (latency, listen_wait))

    def report(self, records_scanned: int) -> dict[str, Any]:
        series: dict[str, list[float | int]] = {name: [] for name in _SERIES}
        stages: dict[str, list[float | int]] = {name: [] for name in _STAGES}
        counted = 0
        for turn in self.turns.values():
            kind = turn.get("kind")
            if kind == "auto":
                _collect_stages(stages, turn)
            found: list[tuple[str, float | int | None]] = []
            if kind == "continue":
                found = [
                    ("turnLatency", _finite(turn.get("latencyMs"))),
                    ("listenWait", _finite(turn.get("listenWaitMs"))),
                ]
            elif kind in ("auto", "realtime"):
                found = [("responseLatency", _finite(turn.get("responseMs")))]
            counted += _collect(series, found)
        for latency, listen_wait in self.legacy.values():
            counted += _collect(series, [("turnLatency", latency), ("listenWait", listen_wait)])
        return {
            "recordsScanned": records_scanned,
            "turnsCounted": counted,
            **{name: summarize(series[name]) for name in _SERIES},
            "stages": {name: summarize(stages[name]) for name in _STAGES},
        }


def _collect_stages(stages: dict[str, list[float | int]], turn: Mapping[str, Any]) -> None:
    """Add each stage of an auto turn whose two stamps are finite numbers in order.

    Stamps out of order mean the stage did not happen that way: a reply spoken sentence by
    sentence has audio before the whole reply, so it adds no "reply to first audio" sample.
    """
    for name, (start_key, end_key, _label) in _STAGES.items():
        start = _finite(turn.get(start_key))
        end = _finite(turn.get(end_key))
        if start is not None and end is not None and end >= start:
            stages[name].append(end - start)


def _collect(
    series: dict[str, list[float | int]], found: list[tuple[str, float | int | None]]
) -> int:
    """Add the finite values to their series; 1 if the turn contributed any, else 0."""
    contributed = 0
    for name, value in found:
        if value is not None:
            series[name].append(value)
            contributed = 1
    return contributed


def latency_report(path: Path, last: int = 200) -> dict[str, Any]:
    """Summarize turn latencies over the last ``last`` (at least 1) valid records of ``path``.

    Shape: ``{"recordsScanned","turnsCounted","turnLatency","listenWait","responseLatency",
    "stages"}``; each series ``{"count","minMs","maxMs","avgMs","p50Ms","p90Ms","p95Ms","p99Ms"}``;
    ``stages`` holds one such series per auto-turn stage (``transcriptToReplyMs``,
    ``replyToFirstAudioMs``, ``firstAudioToFirstFrameMs``), which do not change ``turnsCounted``.
    A missing or empty file gives zeros.
    """
    window = deque(read_records(path), maxlen=max(1, last))
    samples = _Samples()
    for record in window:
        samples.add(record)
    return samples.report(len(window))


def _cell(value: float | int) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return str(int(value))


def format_latency(report: Mapping[str, Any]) -> str:
    """Render a latency report as a readable table, one row per series and stage, values in ms."""
    header = ("series", "count", "min", "max", "avg", "p50", "p90", "p95", "p99")
    rows: list[tuple[str, ...]] = [header]
    for name in _SERIES:
        stats = report[name]
        rows.append((_SERIES_LABELS[name], *(_cell(stats[key]) for key in _STAT_KEYS)))
    stages = report.get("stages", {})
    for name, (_start, _end, label) in _STAGES.items():
        if name in stages:
            rows.append((label, *(_cell(stages[name][key]) for key in _STAT_KEYS)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        f"records scanned: {report['recordsScanned']}  turns counted: {report['turnsCounted']}"
        "  (times in ms)"
    ]
    for row in rows:
        cells = [cell.rjust(width) for cell, width in zip(row, widths, strict=True)]
        cells[0] = row[0].ljust(widths[0])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
