"""Prometheus metrics of one gateway (SPEC §11.3), fed by the stream of persisted call records."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from voicecall.calls.state import TERMINAL_STATES

__all__ = [
    "METRICS_CONTENT_TYPE",
    "TERMINAL_STATES",
    "GatewayMetrics",
    "record_to_dict",
]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


_TURN_BUCKETS_S = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 180.0)
_SEEN_CALLS_LIMIT = 10_000


def record_to_dict(record: Any) -> dict[str, Any] | None:
    """A CallRecord as its camelCase dict, whatever shape the store hands us."""
    if isinstance(record, dict):
        return record
    if isinstance(record, Mapping):
        return dict(record)
    dump = getattr(record, "model_dump", None)
    if callable(dump):
        dumped = dump(by_alias=True, mode="json")
        return dumped if isinstance(dumped, dict) else None
    return None


class GatewayMetrics:
    """Every §11.3 metric, registered in a registry owned by one Gateway."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls_started = Counter(
            "voicecall_calls_started", "Calls started.", ["provider", "direction"], registry=r
        )
        self.calls_ended = Counter(
            "voicecall_calls_ended",
            "Calls ended, by end reason.",
            ["provider", "reason"],
            registry=r,
        )
        self.calls_active = Gauge(
            "voicecall_calls_active", "Calls not yet ended.", ["provider"], registry=r
        )
        self.webhook_requests = Counter(
            "voicecall_webhook_requests",
            "Carrier webhook requests, by result.",
            ["provider", "result"],
            registry=r,
        )
        self.media_streams_active = Gauge(
            "voicecall_media_streams_active", "Open media streams.", ["kind"], registry=r
        )
        self.media_stream_rejections = Counter(
            "voicecall_media_stream_rejections",
            "Refused media stream upgrades.",
            ["reason"],
            registry=r,
        )
        self.turn_latency = Histogram(
            "voicecall_turn_latency_seconds",
            "Turn latency (§10.2).",
            ["kind"],
            buckets=_TURN_BUCKETS_S,
            registry=r,
        )
        self.tts_fallbacks = Counter(
            "voicecall_tts_fallbacks", "TTS provider fallbacks.", ["from", "to"], registry=r
        )
        self.stt_reconnects = Counter(
            "voicecall_stt_reconnects", "STT session reconnects.", ["provider"], registry=r
        )
        for kind in ("classic", "realtime"):
            self.media_streams_active.labels(kind=kind).set(0)
        # callId -> (end counted, highest turn number observed)
        self._seen: dict[str, tuple[bool, int]] = {}
        self._active_source: Callable[[], int] | None = None
        self._provider = "mock"

    def bind_runtime(self, provider: str, active_calls: Callable[[], int] | None) -> None:
        """Read ``calls_active`` from the live runtime at scrape time."""
        self._provider = provider
        self._active_source = active_calls

    def observe_record(self, record: Any) -> None:
        """Count starts, ends and new turns from one persisted CallRecord snapshot."""
        data = record_to_dict(record)
        call_id = data.get("callId") if data else None
        if data is None or not isinstance(call_id, str):
            return
        provider = str(data.get("provider") or self._provider)
        previous = self._seen.get(call_id)
        ended, turns_seen = previous if previous else (False, 0)
        if previous is None:
            if len(self._seen) >= _SEEN_CALLS_LIMIT:
                self._seen.pop(next(iter(self._seen)))
            self.calls_started.labels(
                provider=provider, direction=str(data.get("direction") or "outbound")
            ).inc()
        state = data.get("state")
        if not ended and state in TERMINAL_STATES:
            ended = True
            reason = data.get("endReason") or state
            self.calls_ended.labels(provider=provider, reason=str(reason)).inc()
        turns_seen = self._observe_turns(data, turns_seen)
        self._seen[call_id] = (ended, turns_seen)

    def _observe_turns(self, data: dict[str, Any], turns_seen: int) -> int:
        metadata = data.get("metadata")
        turns = metadata.get("turns") if isinstance(metadata, dict) else None
        if not isinstance(turns, list):
            return turns_seen
        newest = turns_seen
        for turn in turns:
            if not isinstance(turn, dict):
                continue
            number = turn.get("n")
            if not isinstance(number, int) or number <= turns_seen:
                continue
            newest = max(newest, number)
            value_ms = turn.get("latencyMs", turn.get("responseMs"))
            if isinstance(value_ms, int | float) and not isinstance(value_ms, bool):
                kind = str(turn.get("kind") or "continue")
                self.turn_latency.labels(kind=kind).observe(value_ms / 1000)
        return newest

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4)."""
        if self._active_source is not None:
            try:
                active = self._active_source()
            except Exception:
                active = 0
            self.calls_active.labels(provider=self._provider).set(active)
        return generate_latest(self.registry)
