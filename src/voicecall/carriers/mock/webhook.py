"""Sans-IO parsing and verification of mock carrier webhooks (SPEC §3.6)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voicecall.errors import InvalidParamsError

__all__ = ["EVENT_TYPES", "VerifiedRequest", "parse_webhook", "verify_request"]

EVENT_TYPES = frozenset(
    {
        "call.initiated",
        "call.ringing",
        "call.answered",
        "call.active",
        "call.speaking",
        "call.speech",
        "call.silence",
        "call.dtmf",
        "call.ended",
        "call.error",
        "call.assistant-speech",
        "call.amd",
        "call.recording",
    }
)

# Defaults fill only absent (or null) fields; explicit false, 0 and "" are kept.
_DEFAULTS: dict[str, tuple[str, Any]] = {
    "call.speech": ("isFinal", True),
    "call.ended": ("reason", "completed"),
    "call.error": ("error", "unknown error"),
}


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """The outcome of signature verification and the request's replay identity."""

    ok: bool
    request_key: str


def verify_request(method: str, url: str, body: bytes) -> VerifiedRequest:
    """Mock webhooks carry no signature: always valid, keyed by a hash of the request."""
    digest = hashlib.sha256(f"{method}\n{url}\n".encode() + body).hexdigest()
    return VerifiedRequest(ok=True, request_key=f"mock:skip:{digest}")


def _bad(message: str) -> InvalidParamsError:
    error = InvalidParamsError(message)
    error.remote = True
    return error


def _normalize(raw: object, where: str, now_ms: int, new_id: Callable[[], str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _bad(f"{where}: expected an object")
    event_type = raw.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise _bad(f"{where}.type: required")
    if event_type not in EVENT_TYPES:
        raise _bad(f"{where}.type: unknown event type {event_type!r}")
    event = dict(raw)
    if event.get("id") is None:
        event["id"] = new_id()
    if event.get("timestamp") is None:
        event["timestamp"] = now_ms
    default = _DEFAULTS.get(event_type)
    if default is not None and event.get(default[0]) is None:
        event[default[0]] = default[1]
    return event


def parse_webhook(
    body: bytes | str,
    *,
    now_ms: int,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> list[dict[str, Any]]:
    """Turn a ``{"event": {...}}`` or ``{"events": [...]}`` body into normalized events."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"body: invalid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise _bad("body: expected a JSON object")
    if "events" in document:
        raw_events = document["events"]
        if not isinstance(raw_events, list):
            raise _bad("events: expected an array")
        return [_normalize(raw, f"events[{i}]", now_ms, new_id) for i, raw in enumerate(raw_events)]
    if "event" in document:
        return [_normalize(document["event"], "event", now_ms, new_id)]
    raise _bad('body: expected "event" or "events"')
