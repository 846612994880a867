"""Mock webhook parsing, defaults and the verification key (SPEC §3.6)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.carriers.mock import parse_webhook, verify_request
from voicecall.carriers.mock.webhook import EVENT_TYPES
from voicecall.errors import InvalidParamsError


def _parse(document: Any) -> list[dict[str, Any]]:
    return parse_webhook(json.dumps(document).encode(), now_ms=1234, new_id=lambda: "gen-id")


def test_verification_always_succeeds_with_hashed_key() -> None:
    """Any request verifies, keyed by sha256 of method, URL and body."""
    body = b'{"event":{"type":"call.ringing"}}'
    result = verify_request("POST", "http://127.0.0.1/voice/webhook", body)
    expected = hashlib.sha256(b"POST\nhttp://127.0.0.1/voice/webhook\n" + body).hexdigest()
    assert result.ok
    assert result.request_key == f"mock:skip:{expected}"


@given(st.binary(), st.binary())
def test_verification_key_differs_for_different_bodies(a: bytes, b: bytes) -> None:
    """Two requests that differ in body never share a replay key."""
    key_a = verify_request("POST", "/w", a).request_key
    key_b = verify_request("POST", "/w", b).request_key
    assert (key_a == key_b) == (a == b)


def test_single_event_gets_defaults() -> None:
    """A bare event gets an id, a timestamp and its type's default field."""
    [speech] = _parse({"event": {"type": "call.speech", "callId": "c1", "transcript": "hi"}})
    assert speech == {
        "type": "call.speech",
        "callId": "c1",
        "transcript": "hi",
        "isFinal": True,
        "id": "gen-id",
        "timestamp": 1234,
    }


def test_events_array_keeps_order_and_defaults() -> None:
    """An events array yields events in order with end reason and error defaults."""
    parsed = _parse({"events": [{"type": "call.ended"}, {"type": "call.error"}]})
    assert [e["type"] for e in parsed] == ["call.ended", "call.error"]
    assert parsed[0]["reason"] == "completed"
    assert parsed[1]["error"] == "unknown error"


@pytest.mark.parametrize(
    ("event", "key", "value"),
    [
        ({"type": "call.speech", "isFinal": False}, "isFinal", False),
        ({"type": "call.ended", "reason": ""}, "reason", ""),
        ({"type": "call.error", "error": ""}, "error", ""),
        ({"type": "call.ringing", "timestamp": 0}, "timestamp", 0),
    ],
)
def test_explicit_falsy_values_are_preserved(event: dict[str, Any], key: str, value: Any) -> None:
    """A field explicitly set to a falsy value is not replaced by its default."""
    [parsed] = _parse({"event": event})
    assert parsed[key] == value


def test_given_id_is_kept() -> None:
    """An event's own id is kept so redeliveries dedupe."""
    [parsed] = _parse({"event": {"type": "call.answered", "id": "evt-7"}})
    assert parsed["id"] == "evt-7"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b"{}", 'expected "event" or "events"'),
        (b'{"events": {}}', "expected an array"),
        (b'{"event": 3}', "event: expected an object"),
        (b'{"event": {}}', "event.type: required"),
        (b'{"events": [{"type": "call.ringing"}, {"type": "call.nope"}]}', r"events\[1\]"),
    ],
)
def test_malformed_bodies_are_rejected(body: bytes, message: str) -> None:
    """Malformed webhook bodies raise a peer-caused error naming the problem."""
    with pytest.raises(InvalidParamsError, match=message) as info:
        parse_webhook(body, now_ms=0)
    assert info.value.remote


@given(st.sampled_from(sorted(EVENT_TYPES)))
def test_every_known_type_parses(event_type: str) -> None:
    """Every normalized event type is accepted."""
    [parsed] = _parse({"event": {"type": event_type}})
    assert parsed["type"] == event_type
