"""How a call is described to readers: the §10.3 status payload and the not-active message."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from voicecall.calls.record import CallRecord

__all__ = [
    "MOCK_STREAM_URL_KEY",
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

#: The ``metadata`` key where the mock carrier keeps the media-stream URL it minted at
#: ``call.answered`` (SPEC §3.6); reported as ``streamUrl`` for live mock calls only.
MOCK_STREAM_URL_KEY = "streamUrl"


def status_of_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """The status payload of a persisted (camelCase) record; unset fields are omitted.

    A live mock call with a minted media stream also reports its ``streamUrl`` (SPEC §3.6),
    after the §10.3 fields; no other carrier, and no ended call, ever does.
    """
    payload = {name: data[name] for name in STATUS_FIELDS if data.get(name) is not None}
    stream_url = _mock_stream_url(data)
    if stream_url is not None:
        payload["streamUrl"] = stream_url
    return payload


def _mock_stream_url(data: Mapping[str, Any]) -> str | None:
    if data.get("provider") != "mock" or data.get("endedAt") is not None:
        return None
    metadata = data.get("metadata")
    url = metadata.get(MOCK_STREAM_URL_KEY) if isinstance(metadata, Mapping) else None
    return url if isinstance(url, str) and url else None


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
