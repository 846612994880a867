"""CallRecord persistence names (§2.1) and its bounded lists (§10.2)."""

from __future__ import annotations

from voicecall.calls.record import CallRecord

EXAMPLE = {
    "callId": "3f2a",
    "providerCallId": "CA9b",
    "provider": "twilio",
    "direction": "outbound",
    "state": "listening",
    "from": "+15550001234",
    "to": "+15550005678",
    "sessionKey": "agent:main:voice:15550005678",
    "agentId": "main",
    "startedAt": 1767225600000,
    "answeredAt": 1767225604120,
    "transcript": [{"timestamp": 1767225604500, "speaker": "bot", "text": "Hi.", "isFinal": True}],
    "processedEventIds": ["twilio:req:5e1c"],
    "metadata": {"mode": "conversation", "turnCount": 0},
}


def test_spec_example_round_trips_with_exact_names() -> None:
    """The §10.1 example line parses and serializes back to the same camelCase object."""
    record = CallRecord.from_json_dict(EXAMPLE)
    assert record.to_json_dict() == EXAMPLE
    assert record.answered_at_ms == 1767225604120


def test_transcript_is_final_defaults_to_true() -> None:
    """A transcript entry without isFinal reads as final."""
    data = dict(EXAMPLE, transcript=[{"timestamp": 1, "speaker": "user", "text": "yo"}])
    assert CallRecord.from_json_dict(data).to_json_dict()["transcript"][0]["isFinal"] is True


def test_processed_event_ids_keep_the_newest_500() -> None:
    """After 600 event ids only the newest 500 remain, oldest dropped."""
    record = CallRecord.from_json_dict(EXAMPLE)
    for i in range(600):
        record.remember_event_id(f"e{i}")
    ids = record.to_json_dict()["processedEventIds"]
    assert len(ids) == 500
    assert ids[0] == "e100" and ids[-1] == "e599"


def test_turns_keep_the_last_200_with_numbering_across_kinds() -> None:
    """Turn n counts up across kinds and survives truncation to the newest 200."""
    record = CallRecord.from_json_dict(EXAMPLE)
    for i in range(250):
        record.add_turn("auto" if i % 2 else "continue", started_at_ms=i, completed_at_ms=i + 5)
    turns = record.to_json_dict()["metadata"]["turns"]
    assert len(turns) == 200
    assert [t["n"] for t in turns] == list(range(51, 251))
    assert {t["kind"] for t in turns} == {"auto", "continue"}
