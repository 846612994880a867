"""The mock carrier's simulated far end, command log and timers (SPEC §3.6)."""

from __future__ import annotations

import asyncio

import pytest

from voicecall.carriers.mock import MockCarrier, MockSettings
from voicecall.errors import CallEndedError

from .conftest import EventLog, MakeCarrier


async def _dial(carrier: MockCarrier, to: str = "+15551230000", **kw: str | None) -> str:
    args: dict[str, str | None] = {"mode": "conversation", "message": None, "dtmf_sequence": None}
    args.update(kw)
    return await carrier.initiate_call(
        call_id="c1",
        from_number="+15550000000",
        to_number=to,
        mode=str(args["mode"]),
        message=args["message"],
        dtmf_sequence=args["dtmf_sequence"],
    )


async def test_answered_call_rings_then_answers(
    make_carrier: MakeCarrier, events: EventLog
) -> None:
    """An outbound call rings, then is answered, with normalized event fields."""
    carrier = make_carrier()
    await carrier.start()
    provider_call_id = await _dial(carrier)
    assert provider_call_id == "mock-c1"
    got = await events.until("call.answered")
    assert [e["type"] for e in got] == ["call.ringing", "call.answered"]
    for event in got:
        assert event["callId"] == "c1"
        assert event["providerCallId"] == "mock-c1"
        assert event["direction"] == "outbound"
        assert isinstance(event["timestamp"], int)
    assert got[0]["id"] != got[1]["id"]
    assert (await carrier.get_call_status("mock-c1")).terminal is False


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed"])
async def test_unanswered_outcomes_end_the_call(
    make_carrier: MakeCarrier, events: EventLog, outcome: str
) -> None:
    """busy, no-answer and failed end the call with that reason and never answer."""
    carrier = make_carrier(outcome=outcome)
    await _dial(carrier)
    got = await events.until("call.ended")
    assert [e["type"] for e in got] == ["call.ringing", "call.ended"]
    assert got[-1]["reason"] == outcome
    status = await carrier.get_call_status("mock-c1")
    assert status.terminal and status.status == outcome


async def test_voicemail_reports_machine_then_ends(
    make_carrier: MakeCarrier, events: EventLog
) -> None:
    """A voicemail outcome reports a machine verdict and ends with reason voicemail."""
    carrier = make_carrier(outcome="voicemail")
    await _dial(carrier)
    got = await events.until("call.ended")
    assert [e["type"] for e in got] == ["call.ringing", "call.amd", "call.ended"]
    assert got[1]["answeredBy"].startswith("machine")
    assert got[2]["reason"] == "voicemail"


async def test_outcome_by_number_suffix(make_carrier: MakeCarrier, events: EventLog) -> None:
    """The callee's trailing digits pick the outcome; the longest matching suffix wins."""
    carrier = make_carrier(outcomes_by_number_suffix={"0486": "busy", "86": "failed"})
    await _dial(carrier, to="+15550000486")
    assert (await events.until("call.ended"))[-1]["reason"] == "busy"
    await carrier.initiate_call(
        call_id="c2",
        from_number="+15550000000",
        to_number="+15550000186",
        mode="notify",
        message="hi",
        dtmf_sequence=None,
    )
    assert (await events.until("call.ended"))[-1]["reason"] == "failed"


async def test_script_replies_echo_turn_tokens(make_carrier: MakeCarrier, events: EventLog) -> None:
    """Each listen turn gets the next script line as a final transcript with the turn token."""
    carrier = make_carrier(script=("first", "second"))
    await _dial(carrier)
    await events.until("call.answered")
    await carrier.start_listening("mock-c1", "tok-1")
    speech = await events.next()
    assert speech["type"] == "call.speech"
    assert (speech["transcript"], speech["isFinal"], speech["turnToken"]) == (
        "first",
        True,
        "tok-1",
    )
    await carrier.stop_listening("mock-c1")
    await carrier.play_tts("mock-c1", "ok")
    await carrier.start_listening("mock-c1", None)
    speech = await events.next()
    assert speech["transcript"] == "second"
    assert "turnToken" not in speech


async def test_callee_hangs_up_after_the_script(
    make_carrier: MakeCarrier, events: EventLog
) -> None:
    """After the last script line, the next bot turn makes the callee hang up."""
    carrier = make_carrier(script=("bye",))
    await _dial(carrier)
    await events.until("call.answered")
    await carrier.start_listening("mock-c1", None)
    assert (await events.next())["transcript"] == "bye"
    await carrier.stop_listening("mock-c1")
    await carrier.play_tts("mock-c1", "Goodbye!")
    ended = await events.next()
    assert (ended["type"], ended["reason"]) == ("call.ended", "hangup-user")
    assert (await carrier.get_call_status("mock-c1")).terminal
    with pytest.raises(CallEndedError):
        await carrier.play_tts("mock-c1", "anyone there?")


async def test_bot_hangup_stops_the_far_end(make_carrier: MakeCarrier, events: EventLog) -> None:
    """When the bot hangs up first, no further simulated events arrive."""
    carrier = make_carrier(script=("a",), reply_ms=50)
    await _dial(carrier)
    await events.until("call.answered")
    await carrier.start_listening("mock-c1", None)
    await carrier.hangup_call("mock-c1")
    assert carrier.pending_timer_count() == 0
    assert (await carrier.get_call_status("mock-c1")).terminal
    await carrier.wait_delivered()
    assert [e["type"] for e in events.seen] == ["call.ringing", "call.answered"]


async def test_hangup_after_ms_ends_answered_call(
    make_carrier: MakeCarrier, events: EventLog
) -> None:
    """mock.hangupAfterMs ends an answered call from the callee side."""
    carrier = make_carrier(hangup_after_ms=5)
    await _dial(carrier)
    got = await events.until("call.ended")
    assert [e["type"] for e in got] == ["call.ringing", "call.answered", "call.ended"]
    assert got[-1]["reason"] == "hangup-user"


async def test_play_tts_waits_for_playback_and_is_heard(make_carrier: MakeCarrier) -> None:
    """play_tts returns only once the simulated playback has run, and the callee hears it."""
    carrier = make_carrier(speech_ms_per_char=1000)
    await _dial(carrier)
    playback = asyncio.ensure_future(carrier.play_tts("mock-c1", "Hello"))
    await asyncio.sleep(0)
    assert not playback.done()
    assert carrier.pending_timer_count() >= 1
    await carrier.hangup_call("mock-c1")
    await asyncio.wait_for(playback, timeout=10)
    call = carrier.call("mock-c1")
    assert call is not None and call.heard == ["Hello"]


async def test_commands_are_recorded(make_carrier: MakeCarrier) -> None:
    """Every command the mock receives is recorded in order with its arguments."""
    carrier = make_carrier(simulate=False)
    await _dial(carrier, dtmf_sequence="12w#", message="Hi")
    await carrier.play_tts("mock-c1", "Hello there")
    await carrier.start_listening("mock-c1", "t")
    await carrier.stop_listening("mock-c1")
    await carrier.send_dtmf("mock-c1", "9")
    await carrier.hangup_call("mock-c1")
    names = [c.name for c in carrier.commands_for("mock-c1")]
    assert names == [
        "initiateCall",
        "playTts",
        "startListening",
        "stopListening",
        "sendDtmf",
        "hangupCall",
    ]
    first = carrier.commands[0]
    assert first.args["toNumber"] == "+15551230000"
    assert first.args["message"] == "Hi"
    assert carrier.commands[1].args == {"text": "Hello there"}
    assert carrier.pre_connect_dtmf("mock-c1") == "12w#"
    call = carrier.call("mock-c1")
    assert call is not None and call.dtmf_received == ["9"]


async def test_no_simulation_emits_nothing(make_carrier: MakeCarrier, events: EventLog) -> None:
    """With mock.simulate false the far end stays silent."""
    carrier = make_carrier(simulate=False)
    await _dial(carrier)
    await carrier.start_listening("mock-c1", None)
    assert carrier.pending_timer_count() == 0
    await carrier.wait_delivered()
    assert events.seen == []


async def test_aclose_cancels_pending_timers(make_carrier: MakeCarrier, events: EventLog) -> None:
    """Closing the carrier cancels every scheduled simulated action."""
    carrier = make_carrier(ring_ms=60_000, answer_ms=60_000)
    await carrier.start()
    await _dial(carrier)
    assert carrier.pending_timer_count() == 1
    await carrier.aclose()
    assert carrier.pending_timer_count() == 0
    assert events.seen == []


@pytest.mark.parametrize("word", ["stale", "ended", "completed"])
async def test_status_terminal_by_id_word(word: str) -> None:
    """A provider call id containing stale/ended/completed reports a terminal status."""
    carrier = MockCarrier(settings=MockSettings())
    assert (await carrier.get_call_status(f"mock-{word}-1")).terminal
    assert not (await carrier.get_call_status("mock-live-1")).terminal


async def test_inbound_simulated_call(make_carrier: MakeCarrier, events: EventLog) -> None:
    """A simulated inbound call announces itself and answers, then follows the script."""
    carrier = make_carrier(script=("hello bot",))
    provider_call_id = await carrier.simulate_inbound_call(
        from_number="+15557654321", to_number="+15550000000"
    )
    got = await events.until("call.answered")
    assert [e["type"] for e in got] == ["call.initiated", "call.answered"]
    assert got[0]["direction"] == "inbound" and got[0]["from"] == "+15557654321"
    await carrier.start_listening(provider_call_id, None)
    assert (await events.next())["transcript"] == "hello bot"


async def test_sink_failure_does_not_stop_delivery(make_carrier: MakeCarrier) -> None:
    """A sink that raises on one event still receives the following events."""
    carrier = make_carrier()
    seen: list[str] = []

    async def flaky(event: dict[str, object]) -> None:
        seen.append(str(event["type"]))
        if event["type"] == "call.ringing":
            raise RuntimeError("boom")

    carrier.set_event_sink(flaky)
    await _dial(carrier)
    while "call.answered" not in seen:
        await asyncio.sleep(0.005)
    assert seen == ["call.ringing", "call.answered"]
