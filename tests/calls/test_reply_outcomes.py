"""What the manager does with an automatic reply's outcome: apology, stages, interruptions."""

from __future__ import annotations

from tests.calls.test_manager import T0, answered, ev, finish, make, of

from voicecall.calls import commands as cmd
from voicecall.calls.manager import CallManager
from voicecall.calls.record import CallRecord
from voicecall.calls.turns import REPLY_APOLOGY, cut_bot_line


def caller_turn(manager: CallManager, text: str = "Hi", **fields: object) -> tuple[str, str]:
    """An answered conversation call whose caller just said ``text``: (call id, reply id)."""
    call_id, _, _ = answered(manager, mode="conversation")
    out = manager.handle_event(
        ev("call.speech", "s1", callId=call_id, transcript=text, **fields), now_ms=T0
    )
    return call_id, of(out, cmd.RunAutoResponse)[0].reply_id


def record(manager: CallManager, call_id: str) -> CallRecord:
    found = manager.get_record(call_id)
    assert found is not None
    return found


def test_a_failed_model_run_is_answered_with_an_apology_and_the_call_listens() -> None:
    """Model error or timeout: the caller hears the apology (a bot line), then we listen."""
    manager, _ = make()
    call_id, reply_id = caller_turn(manager)
    out = manager.auto_reply_ready(
        call_id, reply_id, "", now_ms=T0 + 100, error="timed out after 30000 ms"
    )
    plays = of(out, cmd.PlayTts)
    assert [(p.text, p.kind) for p in plays] == [(REPLY_APOLOGY, "apology")]
    assert "timed out" in of(out, cmd.LogMessage)[0].message
    after = finish(manager, out, cmd.PlayTts)
    assert of(after, cmd.StartListening)
    lines = [(e.speaker, e.text) for e in record(manager, call_id).transcript]
    assert lines[-2:] == [("user", "Hi"), ("bot", REPLY_APOLOGY)]
    assert all(t["kind"] != "auto" for t in record(manager, call_id).metadata.get("turns", []))
    assert record(manager, call_id).ended_at_ms is None


def test_no_apology_when_told_not_to_or_when_the_reply_is_stale() -> None:
    """No runner configured: only the warning. A superseded failure: nothing at all."""
    manager, _ = make()
    call_id, reply_id = caller_turn(manager)
    out = manager.auto_reply_ready(
        call_id, reply_id, "", now_ms=T0, error="no agent runner configured", apologize=False
    )
    assert of(out, cmd.PlayTts) == [] and of(out, cmd.LogMessage)
    manager2, _ = make()
    call_id2, reply_id2 = caller_turn(manager2)
    manager2.handle_event(
        ev("call.speech", "s2", callId=call_id2, transcript="wa", isFinal=False), now_ms=T0
    )
    out = manager2.auto_reply_ready(call_id2, reply_id2, "", now_ms=T0, error="boom")
    assert of(out, cmd.PlayTts) == []


def test_caller_stop_and_first_token_stamps_land_on_the_auto_turn() -> None:
    """The runner's early stamps (caller stopped, first token) are kept on the auto turn."""
    manager, _ = make()
    call_id, reply_id = caller_turn(manager, speechEndedAt=T0 - 300)
    stages = {"callerStoppedAt": T0 - 300, "firstTokenAt": T0 + 150, "other": 5}
    manager.auto_reply_ready(call_id, reply_id, "Hello!", now_ms=T0 + 400, stages=stages)
    turn = record(manager, call_id).metadata["turns"][-1]
    assert turn["callerStoppedAt"] == T0 - 300 and turn["firstTokenAt"] == T0 + 150
    assert "other" not in turn and turn["responseMs"] == 400


def test_run_request_carries_the_vad_end_of_speech() -> None:
    """A final transcript's speechEndedAt becomes the reply command's caller_stopped_at_ms."""
    manager, _ = make()
    call_id, _, _ = answered(manager, mode="conversation")
    out = manager.handle_event(
        ev("call.speech", "s1", callId=call_id, transcript="Hi", speechEndedAt=T0 - 250),
        now_ms=T0,
    )
    assert of(out, cmd.RunAutoResponse)[0].caller_stopped_at_ms == T0 - 250
    out = manager.handle_event(ev("call.speech", "s2", callId=call_id, transcript="x"), now_ms=T0)
    assert of(out, cmd.RunAutoResponse)[0].caller_stopped_at_ms is None  # the VAD heard nothing


def test_an_interrupted_streamed_reply_records_what_was_heard_before_the_interruption() -> None:
    """The heard part becomes a bot line placed before the caller's later line; turn marked."""
    manager, _ = make()
    call_id, _reply_id = caller_turn(manager, "Book a table")
    # The caller's interruption was transcribed before the reply's outcome came back.
    manager.handle_event(
        ev("call.speech", "s2", callId=call_id, transcript="Wait", timestamp=T0 + 900),
        now_ms=T0 + 900,
    )
    stamps = {"firstTokenAt": T0 + 100, "firstAudioAt": T0 + 200, "firstFrameAt": T0 + 220}
    out = manager.reply_interrupted(
        call_id, "First sentence", started_at_ms=T0, stamps=stamps, now_ms=T0 + 1000
    )
    assert of(out, cmd.PersistRecord)
    lines = [(e.speaker, e.text) for e in record(manager, call_id).transcript]
    assert lines[-3:] == [("user", "Book a table"), ("bot", "First sentence"), ("user", "Wait")]
    turn = record(manager, call_id).metadata["turns"][-1]
    assert turn["interrupted"] is True and turn["kind"] == "auto"
    assert turn["completedAt"] == T0 + 220 and turn["responseMs"] == 220
    assert turn["firstTokenAt"] == T0 + 100


def test_an_interrupted_reply_nobody_heard_adds_no_line() -> None:
    """Nothing heard: no bot line, but the turn is still counted as interrupted."""
    manager, _ = make()
    call_id, _ = caller_turn(manager)
    before = len(record(manager, call_id).transcript)
    manager.reply_interrupted(call_id, "", started_at_ms=T0, stamps={}, now_ms=T0 + 50)
    assert len(record(manager, call_id).transcript) == before
    assert record(manager, call_id).metadata["turns"][-1]["responseMs"] == 50


def test_tts_apology_is_written_after_the_unheard_line_is_dropped() -> None:
    """A reply whose TTS failed before any audio: its line goes, the apology heard is added."""
    manager, _ = make()
    call_id, reply_id = caller_turn(manager)
    out = manager.auto_reply_ready(call_id, reply_id, "Sure thing.", now_ms=T0 + 10)
    play = of(out, cmd.PlayTts)[0]
    manager.carrier_result(
        play.op_id,
        now_ms=T0 + 900,
        error="TTS synthesis failed: 500",
        heard_text="",
        apology="Sorry, I'm having trouble speaking right now.",
    )
    lines = [(e.speaker, e.text) for e in record(manager, call_id).transcript]
    assert ("bot", "Sure thing.") not in lines
    assert lines[-1] == ("bot", "Sorry, I'm having trouble speaking right now.")
    assert record(manager, call_id).ended_at_ms is None


def test_cut_bot_line_finds_its_line_after_an_insertion() -> None:
    """If a line was inserted before it, the cut still applies to the right bot line."""
    rec = CallRecord.model_validate(
        {
            "callId": "c",
            "provider": "mock",
            "direction": "inbound",
            "state": "speaking",
            "from": "+1",
            "to": "+2",
            "startedAt": T0,
        }
    )
    rec.add_transcript("bot", "Long reply here", at_ms=T0)
    rec.add_transcript("bot", "inserted", at_ms=T0)
    rec.transcript.reverse()  # the reply moved from index 0 to 1
    cut_bot_line(rec, 0, "Long reply here", "Long reply")
    assert [e.text for e in rec.transcript] == ["inserted", "Long reply"]
