"""Telnyx webhook events become the normalized events of SPEC §2.4 (§3.3 mapping table)."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.calls.events import event_from_dict
from voicecall.carriers.telnyx.webhook import (
    HANGUP_CAUSES,
    decode_client_state,
    encode_client_state,
    end_reason_for,
    parse_webhook,
)
from voicecall.errors import InvalidParamsError

CCID = "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"
CALL_ID = "7b0f4a9e-2a43-4f55-8f0e-1f4a0c2d9b11"
NOW_MS = 1_700_000_000_000


def _body(event_type: str, **payload: Any) -> bytes:
    document = {
        "data": {
            "record_type": "event",
            "event_type": event_type,
            "id": "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0",
            "occurred_at": "2023-11-14T22:13:20.000000Z",
            "payload": {
                "call_control_id": CCID,
                "client_state": encode_client_state(CALL_ID),
                "from": "+15550001111",
                "to": "+15550002222",
                **payload,
            },
        },
        "meta": {"attempt": 1, "delivered_to": "https://example.com/voice/webhook"},
    }
    return json.dumps(document).encode()


def _events(event_type: str, **payload: Any) -> list[dict[str, Any]]:
    return list(parse_webhook(_body(event_type, **payload), request_key="k", now_ms=NOW_MS).events)


@pytest.mark.parametrize(
    ("telnyx_type", "payload", "expected"),
    [
        ("call.initiated", {"direction": "incoming"}, {"type": "call.initiated"}),
        ("call.initiated", {"direction": "outgoing"}, {"type": "call.initiated"}),
        ("call.ringing", {}, {"type": "call.ringing"}),
        ("call.answered", {}, {"type": "call.answered"}),
        ("call.bridged", {}, {"type": "call.active"}),
        ("call.speak.started", {}, {"type": "call.speaking"}),
        (
            "call.transcription",
            {"transcription_data": {"transcript": "yes please", "confidence": 0.93}},
            {"type": "call.speech", "transcript": "yes please", "isFinal": True},
        ),
        (
            "call.transcription",
            {"transcription_data": {"transcript": "yes", "is_final": False}},
            {"type": "call.speech", "transcript": "yes", "isFinal": False},
        ),
        (
            "call.transcription",
            {"transcription": "flat form"},
            {"type": "call.speech", "transcript": "flat form", "isFinal": True},
        ),
        ("call.dtmf.received", {"digit": "5"}, {"type": "call.dtmf", "digits": "5"}),
        (
            "call.hangup",
            {"hangup_cause": "user_busy"},
            {"type": "call.ended", "reason": "busy"},
        ),
        (
            "call.recording.saved",
            {
                "recording_id": "rec-1",
                "recording_urls": {"mp3": "https://x/rec.mp3"},
                "recording_started_at": "2023-11-14T22:13:20Z",
                "recording_ended_at": "2023-11-14T22:13:32.500Z",
            },
            {"type": "call.recording", "sid": "rec-1", "url": "https://x/rec.mp3"},
        ),
    ],
)
def test_event_mapping(telnyx_type: str, payload: dict[str, Any], expected: dict[str, Any]) -> None:
    """Each Telnyx event type becomes its normalized event, with our callId and Telnyx's id."""
    (event,) = _events(telnyx_type, **payload)
    assert {k: event[k] for k in expected} == expected
    assert event["callId"] == CALL_ID
    assert event["providerCallId"] == CCID
    assert event["from"] == "+15550001111" and event["to"] == "+15550002222"
    assert event["dedupeKey"] == "telnyx:event:0ccc7b54-4df3-4bca-a65a-3da1ecc777f0"
    assert event["timestamp"] == NOW_MS
    event_from_dict(event)  # the manager accepts it


@pytest.mark.parametrize(
    "telnyx_type",
    ["call.speak.ended", "streaming.started", "streaming.stopped", "streaming.failed", "call.cost"],
)
def test_events_without_a_normalized_form(telnyx_type: str) -> None:
    """Playback ends, streaming notices and unknown types produce no call event."""
    assert _events(telnyx_type) == []


def test_direction_maps_to_ours() -> None:
    """Telnyx incoming/outgoing become inbound/outbound."""
    assert _events("call.initiated", direction="incoming")[0]["direction"] == "inbound"
    assert _events("call.initiated", direction="outgoing")[0]["direction"] == "outbound"


def test_recording_duration_is_derived() -> None:
    """A saved recording reports its length from the start and end times."""
    (event,) = _events(
        "call.recording.saved",
        recording_started_at="2023-11-14T22:13:20Z",
        recording_ended_at="2023-11-14T22:13:32.500Z",
    )
    assert event["durationSec"] == 12.5


@pytest.mark.parametrize(("cause", "reason"), sorted(HANGUP_CAUSES.items()))
def test_hangup_cause_mapping(cause: str, reason: str) -> None:
    """Every Telnyx hangup cause of SPEC §3.3 maps to its end reason."""
    (event,) = _events("call.hangup", hangup_cause=cause)
    assert event["reason"] == reason


def test_hangup_cause_table_is_the_spec_table() -> None:
    """The table holds exactly the causes SPEC §3.3 lists, with their reasons."""
    assert dict(HANGUP_CAUSES) == {
        "normal_clearing": "completed",
        "normal_unspecified": "completed",
        "originator_cancel": "hangup-bot",
        "call_rejected": "busy",
        "user_busy": "busy",
        "no_answer": "no-answer",
        "no_user_response": "no-answer",
        "timeout": "no-answer",
        "destination_out_of_order": "failed",
        "network_out_of_order": "failed",
        "service_unavailable": "failed",
        "recovery_on_timer_expire": "failed",
        "machine_detected": "voicemail",
        "fax_detected": "voicemail",
        "user_hangup": "hangup-user",
        "subscriber_absent": "hangup-user",
        "time_limit": "timeout",
    }


def test_unknown_hangup_cause_is_completed_with_a_warning() -> None:
    """An unknown cause ends the call as completed and says so."""
    parsed = parse_webhook(
        _body("call.hangup", hangup_cause="gremlins"), request_key="k", now_ms=NOW_MS
    )
    assert parsed.events[0]["reason"] == "completed"
    assert "gremlins" in parsed.warnings[0]
    assert end_reason_for(None) == ("completed", False)


def test_turn_token_rides_in_client_state() -> None:
    """A transcript during a listen turn carries that turn's token."""
    (event,) = _events(
        "call.transcription",
        client_state=encode_client_state(CALL_ID, "turn-1"),
        transcription_data={"transcript": "hi"},
    )
    assert event["callId"] == CALL_ID and event["turnToken"] == "turn-1"


def test_foreign_client_state_falls_back_to_the_call_control_id() -> None:
    """Without a client_state of ours the callId is the call_control_id."""
    (event,) = _events("call.answered", client_state="aGF2ZSBhIG5pY2UgZGF5ID1d")
    # "have a nice day =]" has spaces: not one of our ids.
    assert event["callId"] == CCID
    (event,) = _events("call.answered", client_state=None)
    assert event["callId"] == CCID


def test_event_without_id_is_keyed_by_the_request() -> None:
    """Without data.id the verified request key is the dedupe key."""
    document = json.loads(_body("call.answered"))
    del document["data"]["id"]
    parsed = parse_webhook(json.dumps(document).encode(), request_key="telnyx:abc", now_ms=1)
    assert parsed.events[0]["dedupeKey"] == "telnyx:abc"


def test_redelivery_keeps_the_dedupe_key() -> None:
    """A redelivered event (new meta.attempt, new bytes) keeps its dedupe key."""
    first = _body("call.dtmf.received", digit="1")
    again = first.replace(b'"attempt": 1', b'"attempt": 2')
    assert first != again
    one = parse_webhook(first, request_key="a", now_ms=1).events[0]["dedupeKey"]
    two = parse_webhook(again, request_key="b", now_ms=1).events[0]["dedupeKey"]
    assert one == two


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{}",
        b'{"data": 1}',
        b'{"data": {}}',
        b'{"data": {"event_type": "x", "payload": 3}}',
    ],
)
def test_malformed_bodies_are_remote_errors(body: bytes) -> None:
    """A body that is not a Telnyx event raises an InvalidParamsError blamed on the peer."""
    with pytest.raises(InvalidParamsError) as info:
        parse_webhook(body, request_key="k", now_ms=1)
    assert info.value.remote


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="|"),
        min_size=1,
        max_size=64,
    ),
    st.none()
    | st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64
    ),
)
def test_client_state_round_trip(call_id: str, turn: str | None) -> None:
    """What we put in client_state comes back unchanged."""
    assert decode_client_state(encode_client_state(call_id, turn)) == (call_id, turn)


@given(st.text(max_size=80) | st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode()))
def test_decode_client_state_never_raises(value: str) -> None:
    """Arbitrary client_state strings decode to ids or to nothing, never to an exception."""
    call_id, _ = decode_client_state(value)
    assert call_id is None or (call_id.isprintable() and " " not in call_id)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.sampled_from(
        [
            "call.initiated",
            "call.answered",
            "call.hangup",
            "call.transcription",
            "call.dtmf.received",
            "call.recording.saved",
            "call.speak.ended",
            "whatever",
        ]
    ),
    st.dictionaries(
        st.sampled_from(
            [
                "call_control_id",
                "client_state",
                "direction",
                "from",
                "to",
                "digit",
                "hangup_cause",
                "transcription_data",
                "transcription",
                "recording_urls",
                "recording_started_at",
            ]
        ),
        _JSON,
        max_size=8,
    ),
)
def test_parser_accepts_or_refuses_any_payload(event_type: str, payload: dict[str, Any]) -> None:
    """Any payload parses into events the manager accepts, or raises only InvalidParamsError."""
    body = json.dumps({"data": {"event_type": event_type, "payload": payload}}).encode()
    try:
        parsed = parse_webhook(body, request_key="k", now_ms=1)
    except InvalidParamsError:
        return
    for event in parsed.events:
        event_from_dict(event)


@given(st.binary(max_size=200))
def test_parser_never_crashes_on_bytes(body: bytes) -> None:
    """Random bytes parse or raise InvalidParamsError, nothing else."""
    with contextlib.suppress(InvalidParamsError):
        parse_webhook(body, request_key="k", now_ms=1)
