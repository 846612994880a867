"""Parsing normalized event dicts (§2.4)."""

from __future__ import annotations

import pytest

from voicecall.calls.events import CallEnded, SpeechReceived, event_from_dict
from voicecall.errors import InvalidParamsError


def test_speech_event_parses_with_defaults() -> None:
    """A speech event without isFinal is final and keeps its turn token."""
    event = event_from_dict(
        {"type": "call.speech", "id": "e1", "callId": "c", "timestamp": 5, "transcript": "hi",
         "turnToken": "t1"}
    )  # fmt: skip
    assert isinstance(event, SpeechReceived)
    assert event.is_final and event.turn_token == "t1" and event.dedupe_id == "e1"


def test_dedupe_key_wins_over_id() -> None:
    """An event's dedupeKey is the key it is deduplicated on."""
    event = event_from_dict(
        {"type": "call.ended", "id": "e1", "dedupeKey": "k", "timestamp": 1, "reason": "busy"}
    )
    assert isinstance(event, CallEnded) and event.dedupe_id == "k" and event.reason == "busy"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "call.speech", "id": "e", "timestamp": 1}, "transcript"),
        ({"type": "call.nope", "id": "e", "timestamp": 1}, "type"),
        ({"id": "e", "timestamp": 1}, "type"),
        ({"type": "call.dtmf", "id": "e", "timestamp": "x", "digits": "1"}, "timestamp"),
        ({"type": "call.ringing", "timestamp": 1}, "id"),
    ],
)
def test_bad_events_name_the_bad_field(data: dict[str, object], field: str) -> None:
    """A malformed event raises InvalidParamsError naming the offending field."""
    with pytest.raises(InvalidParamsError, match=f"invalid event field {field}:"):
        event_from_dict(data)
