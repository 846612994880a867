"""How a call is described to readers: the §10.3 status payload and the not-active message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from voicecall.calls.record import CallRecord

__all__ = ["call_status_payload", "iso_from_epoch_ms", "not_active_message"]

_STATUS_FIELDS = (
    "callId",
    "providerCallId",
    "provider",
    "direction",
    "state",
    "from",
    "to",
    "startedAt",
    "answeredAt",
    "endedAt",
    "endReason",
)


def call_status_payload(record: CallRecord) -> dict[str, Any]:
    """The per-call object of ``voicecall.status`` (absent optionals omitted)."""
    data = record.to_json_dict()
    return {name: data[name] for name in _STATUS_FIELDS if name in data}


def iso_from_epoch_ms(epoch_ms: int) -> str:
    """Epoch ms as ISO-8601 UTC with milliseconds, the way JavaScript's toISOString writes it."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def not_active_message(record: CallRecord) -> str:
    """``call is not active (last state=…, endReason=…, endedAt=…)``."""
    reason = record.end_reason.value if record.end_reason else "unknown"
    ended = iso_from_epoch_ms(record.ended_at_ms) if record.ended_at_ms is not None else "unknown"
    return (
        f"call is not active (last state={record.state.value}, endReason={reason}, endedAt={ended})"
    )
