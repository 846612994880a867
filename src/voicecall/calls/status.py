"""How a call is described to readers: the §10.3 status payload and the not-active message."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from voicecall.calls.record import CallRecord

__all__ = [
    "STATUS_FIELDS",
    "call_status_payload",
    "iso_from_epoch_ms",
    "not_active_message",
    "status_of_json",
]

#: The fields of a call's status payload (SPEC §10.3), in output order.
STATUS_FIELDS = (
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


def status_of_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """The status payload of a persisted (camelCase) record; unset fields are omitted."""
    return {name: data[name] for name in STATUS_FIELDS if data.get(name) is not None}


def call_status_payload(record: CallRecord) -> dict[str, Any]:
    """The per-call object of ``voicecall.status`` (absent optionals omitted)."""
    return status_of_json(record.to_json_dict())


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
