"""The sans-IO call manager: admission, dedupe, inbound policy, modes, turns, timers, recovery."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from voicecall.calls import commands as cmd
from voicecall.calls.admission import OutboundRequest
from voicecall.calls.commands import Command, TimerKind
from voicecall.calls.events import event_from_dict
from voicecall.calls.manager import CallManager
from voicecall.calls.state import CallState
from voicecall.config import VoicecallConfig
from voicecall.errors import CallEndedError, CallError, InvalidParamsError, UnknownCallError

T0 = 1_700_000_000_000


def make(**overrides: Any) -> tuple[CallManager, VoicecallConfig]:
    data: dict[str, Any] = {"toNumber": "+15550001111"}
    data.update(overrides)
    config = VoicecallConfig.model_validate(data)
    counter = itertools.count(1)
    manager = CallManager(
        config, supports_pre_connect_dtmf=True, new_id=lambda: f"id{next(counter)}"
    )
    return manager, config


def of(commands: list[Command], kind: type[Any]) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def ev(type_: str, id_: str, **fields: Any) -> Any:
    return event_from_dict({"type": type_, "id": id_, "timestamp": T0, **fields})


def placed(manager: CallManager, **request: Any) -> tuple[str, str]:
    """Initiate a call and report it placed; returns (callId, providerCallId)."""
    call_id, out = manager.initiate(OutboundRequest(**request), waiter_id="w0", now_ms=T0)
    place = of(out, cmd.PlaceCall)[0]
    manager.carrier_result(place.op_id, now_ms=T0, provider_call_id=f"mock-{call_id}")
    return call_id, f"mock-{call_id}"


def answered(manager: CallManager, **request: Any) -> tuple[str, str, list[Command]]:
    call_id, pcid = placed(manager, **request)
    out = manager.handle_event(ev("call.answered", f"ans-{call_id}", callId=call_id), now_ms=T0)
    return call_id, pcid, out


def finish(
    manager: CallManager, out: list[Command], kind: type[Any], now_ms: int = T0
) -> list[Command]:
    """Report the first carrier command of ``kind`` in ``out`` as succeeded."""
    return manager.carrier_result(of(out, kind)[0].op_id, now_ms=now_ms)


# ---- admission -------------------------------------------------------------------------------


def test_initiate_persists_critically_before_dialling() -> None:
    """The first command persists the initiated record (critical), the second dials."""
    manager, _ = make()
    call_id, out = manager.initiate(OutboundRequest(message="hi"), waiter_id="w", now_ms=T0)
    assert isinstance(out[0], cmd.PersistRecord) and out[0].critical
    assert (
        out[0].snapshot["state"] == "initiated" and out[0].snapshot["metadata"]["mode"] == "notify"
    )
    assert isinstance(out[1], cmd.PlaceCall) and out[1].to_number == "+15550001111"
    result = manager.carrier_result(out[1].op_id, now_ms=T0, provider_call_id="P1")
    assert of(result, cmd.ResolveWaiter)[0].result == {"callId": call_id, "initiated": True}
    assert manager.get_record(call_id).provider_call_id == "P1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("config", "request_", "error", "message"),
    [
        ({}, {"to": "5550001111"}, InvalidParamsError,
         "Invalid phone number: 5550001111 (expected E.164)"),
        ({"toNumber": None}, {}, InvalidParamsError,
         "to number is required (pass to or set toNumber)"),
        ({}, {"from_number": "+15559999999"}, InvalidParamsError,
         "from number +15559999999 is not configured (set fromNumber or add it under numbers)"),
        ({}, {"dtmf_sequence": "12"}, InvalidParamsError,
         'dtmfSequence is only supported with mode "conversation"'),
        ({}, {"dtmf_sequence": "12x", "mode": "conversation"}, InvalidParamsError,
         "Invalid DTMF digits: 12x (allowed: 0-9 * # w W p P ,)"),
        ({"provider": "twilio", "fromNumber": "+15550002222"}, {}, CallError,
         "Webhook URL not configured"),
    ],
)  # fmt: skip
def test_admission_guards_use_exact_messages(
    config: dict[str, Any], request_: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each failed guard raises its exact §2.2 message."""
    data = {"toNumber": "+15550001111", **config}
    manager = CallManager(VoicecallConfig.model_validate(data), webhook_url_configured=False)
    if config.get("provider") is None:
        manager = CallManager(VoicecallConfig.model_validate(data))
    with pytest.raises(error) as info:
        manager.initiate(OutboundRequest(**request_), waiter_id="w", now_ms=T0)
    assert str(info.value) == message


def test_dtmf_sequence_needs_a_carrier_that_can_send_it() -> None:
    """A carrier without pre-connect DTMF refuses dtmfSequence before dialling."""
    manager = CallManager(VoicecallConfig.model_validate({"toNumber": "+15550001111"}))
    with pytest.raises(CallError, match="dtmfSequence is not supported by provider mock"):
        manager.initiate(
            OutboundRequest(dtmf_sequence="1", mode="conversation"), waiter_id="w", now_ms=T0
        )


def test_concurrency_cap_counts_inbound_and_outbound_calls() -> None:
    """An inbound call occupies the only slot, so an outbound call is refused."""
    manager, _ = make(inboundPolicy="open")
    manager.handle_event(
        ev("call.initiated", "in1", providerCallId="PX", direction="inbound", **{"from": "+1555"}),
        now_ms=T0,
    )
    with pytest.raises(CallError, match=r"^Maximum concurrent calls reached \(1\)$"):
        manager.initiate(OutboundRequest(), waiter_id="w", now_ms=T0)


def test_from_number_route_sets_agent_and_route_key() -> None:
    """A per-call from that is a numbers key applies that route's agentId (I8)."""
    manager, _ = make(numbers={"+15550003333": {"agentId": "sales"}})
    call_id, _ = placed(manager, from_number="+15550003333")
    record = manager.get_record(call_id)
    assert record is not None and record.agent_id == "sales"
    assert record.metadata["numberRouteKey"] == "+15550003333"
    assert record.session_key == "agent:sales:voice:15550001111"


def test_carrier_failure_marks_the_call_failed() -> None:
    """A dial error ends the call as failed and rejects with the §2.2 message."""
    manager, _ = make()
    call_id, out = manager.initiate(OutboundRequest(), waiter_id="w", now_ms=T0)
    result = manager.carrier_result(of(out, cmd.PlaceCall)[0].op_id, now_ms=T0 + 1, error="boom")
    assert of(result, cmd.RejectWaiter)[0].message == "Failed to initiate call: boom"
    record = manager.get_record(call_id)
    assert record is not None and record.state is CallState.FAILED and record.ended_at_ms == T0 + 1


# ---- events and dedupe ---------------------------------------------------------------------


def test_duplicate_events_are_processed_once() -> None:
    """The same event id twice yields one transcript entry."""
    manager, _ = make()
    call_id, _, _ = answered(manager, mode="conversation")
    speech = ev("call.speech", "s1", callId=call_id, transcript="hello")
    manager.handle_event(speech, now_ms=T0)
    assert manager.handle_event(speech, now_ms=T0) == []
    record = manager.get_record(call_id)
    assert record is not None
    assert [e.text for e in record.transcript if e.speaker == "user"] == ["hello"]


def test_retryable_errors_are_not_committed_to_dedupe() -> None:
    """A retryable error neither ends the call nor blocks a redelivery of the same id."""
    manager, _ = make()
    call_id, _ = placed(manager)
    retry = ev("call.error", "err1", callId=call_id, error="later", retryable=True)
    manager.handle_event(retry, now_ms=T0)
    assert manager.handle_event(retry, now_ms=T0) != []
    fatal = ev("call.error", "err1", callId=call_id, error="dead")
    manager.handle_event(fatal, now_ms=T0)
    record = manager.get_record(call_id)
    assert record is not None and record.state is CallState.ERROR


def test_every_processed_event_persists_a_snapshot() -> None:
    """A ringing event produces a persisted snapshot carrying the event id."""
    manager, _ = make()
    call_id, _ = placed(manager)
    out = manager.handle_event(ev("call.ringing", "r1", callId=call_id), now_ms=T0)
    snapshot = of(out, cmd.PersistRecord)[-1].snapshot
    assert snapshot["state"] == "ringing" and "r1" in snapshot["processedEventIds"]


def test_provider_id_upgrade_moves_the_mapping() -> None:
    """An event with a new providerCallId re-keys the call (Plivo request_uuid → CallUUID)."""
    manager, _ = make()
    call_id, old = placed(manager)
    manager.handle_event(ev("call.ringing", "r1", callId=call_id, providerCallId="NEW"), now_ms=T0)
    assert manager.find_by_provider_id("NEW") is manager.get_record(call_id)
    assert manager.find_by_provider_id(old) is None


def test_events_for_ended_calls_are_ignored() -> None:
    """After the call ended, a late answered event changes nothing."""
    manager, _ = make()
    call_id, _ = placed(manager)
    manager.handle_event(ev("call.ended", "e1", callId=call_id, reason="busy"), now_ms=T0)
    assert manager.handle_event(ev("call.answered", "a1", callId=call_id), now_ms=T0) == []
    record = manager.get_record(call_id)
    assert record is not None and record.state is CallState.BUSY


# ---- inbound policy ------------------------------------------------------------------------


def test_rejected_inbound_call_is_persisted_and_hung_up_once() -> None:
    """A disallowed caller gets a hangup-bot record with rejectionReason and one hangup."""
    manager, _ = make(inboundPolicy="allowlist", allowFrom=["+15550007777"])
    first = ev(
        "call.initiated",
        "i1",
        providerCallId="PIN",
        direction="inbound",
        **{"from": "+15550008888"},
    )
    out = manager.handle_event(first, now_ms=T0)
    snapshot = of(out, cmd.PersistRecord)[0].snapshot
    assert snapshot["state"] == snapshot["endReason"] == "hangup-bot"
    assert snapshot["metadata"]["rejectionReason"] == "inbound-policy"
    hangups = of(out, cmd.HangUp)
    assert len(hangups) == 1
    again = ev(
        "call.ringing", "i2", providerCallId="PIN", direction="inbound", **{"from": "+15550008888"}
    )
    assert of(manager.handle_event(again, now_ms=T0), cmd.HangUp) == []
    manager.carrier_result(hangups[0].op_id, now_ms=T0, error="network")
    retry = ev("call.ringing", "i3", providerCallId="PIN", direction="inbound")
    assert len(of(manager.handle_event(retry, now_ms=T0), cmd.HangUp)) == 1
    assert manager.active_call_count == 0


def test_allowed_inbound_call_is_registered_ringing_with_route_greeting() -> None:
    """An allowlisted caller (digits equal) becomes a ringing conversation call with a greeting."""
    manager, _ = make(
        inboundPolicy="pairing",
        allowFrom=["+15550007777"],
        numbers={"+15550002222": {"inboundGreeting": "Sales here."}},
    )
    event = ev(
        "call.ringing", "i1", providerCallId="PIN", direction="inbound",
        **{"from": "+1 (555) 000-7777", "to": "+15550002222"},
    )  # fmt: skip
    manager.handle_event(event, now_ms=T0)
    record = manager.find_by_provider_id("PIN")
    assert record is not None and record.state is CallState.RINGING
    assert record.direction == "inbound" and record.metadata["initialMessage"] == "Sales here."
    assert record.session_key == "agent:main:voice:15550007777"


def test_outbound_api_calls_are_registered_without_policy() -> None:
    """An unknown outbound call is adopted even when inbound calls are disabled."""
    manager, _ = make()
    manager.handle_event(
        ev("call.ringing", "o1", providerCallId="EXT", direction="outbound"), now_ms=T0
    )
    record = manager.find_by_provider_id("EXT")
    assert record is not None and record.direction == "outbound"


# ---- modes ------------------------------------------------------------------------------------


def test_mock_notify_speaks_then_waits_then_hangs_up_as_bot() -> None:
    """Notify: answer → speak → notify timer → hangup → hangup-bot, message removed after play."""
    manager, _ = make()
    call_id, pcid, out = answered(manager, message="Parcel today.")
    assert of(out, cmd.StartTimer)[0].kind is TimerKind.MAX_DURATION
    play = of(out, cmd.PlayTts)[0]
    assert play.text == "Parcel today." and play.provider_call_id == pcid
    out = manager.carrier_result(play.op_id, now_ms=T0 + 100)
    timer = of(out, cmd.StartTimer)[0]
    assert timer.kind is TimerKind.NOTIFY_HANGUP and timer.due_ms == T0 + 100 + 3000
    assert "initialMessage" not in manager.get_record(call_id).metadata  # type: ignore[union-attr]
    out = manager.timer_expired(call_id, TimerKind.NOTIFY_HANGUP, now_ms=T0 + 3100)
    out = finish(manager, out, cmd.HangUp, T0 + 3101)
    record = manager.get_record(call_id)
    assert (
        record is not None and record.end_reason == "hangup-bot" and record.ended_at_ms == T0 + 3101
    )
    assert TimerKind.MAX_DURATION in {c.kind for c in of(out, cmd.CancelTimer)}


def test_failed_initial_message_stays_queued() -> None:
    """A failed playback leaves the call listening with the initial message still queued."""
    manager, _ = make()
    call_id, _, out = answered(manager, message="Hi", mode="conversation")
    manager.carrier_result(of(out, cmd.PlayTts)[0].op_id, now_ms=T0, error="tts down")
    record = manager.get_record(call_id)
    assert record is not None and record.state is CallState.LISTENING
    assert record.metadata["initialMessage"] == "Hi"


def test_twilio_notify_is_not_spoken_again_on_answer() -> None:
    """Twilio's inline TwiML carries the notify message; answering plays nothing (I19)."""
    config = VoicecallConfig.model_validate(
        {"provider": "twilio", "toNumber": "+15550001111", "fromNumber": "+15550002222",
         "publicUrl": "https://x.example/voice/webhook"}
    )  # fmt: skip
    manager = CallManager(config)
    call_id, out = manager.initiate(OutboundRequest(message="hi"), waiter_id="w", now_ms=T0)
    manager.carrier_result(of(out, cmd.PlaceCall)[0].op_id, now_ms=T0, provider_call_id="CA1")
    out = manager.handle_event(ev("call.answered", "a", callId=call_id), now_ms=T0)
    assert of(out, cmd.PlayTts) == []


# ---- speak / continue / end --------------------------------------------------------------------


def test_continue_turn_records_metrics_and_resolves_with_transcript() -> None:
    """continue: speak, listen with a token, resolve on the final transcript, write metrics."""
    manager, _ = make()
    call_id, _, out = answered(manager, mode="conversation")
    out = manager.continue_call(call_id, "When?", waiter_id="turn", now_ms=T0 + 1000)
    with pytest.raises(CallError, match=r"^a turn is already in progress for this call$"):
        manager.continue_call(call_id, "Again?", waiter_id="t2", now_ms=T0 + 1000)
    out = finish(manager, out, cmd.PlayTts, T0 + 1500)
    listen = of(out, cmd.StartListening)[0]
    assert listen.turn_token is not None
    stale = ev("call.speech", "s0", callId=call_id, transcript="old", turnToken="other")
    assert of(manager.handle_event(stale, now_ms=T0 + 1600), cmd.ResolveWaiter) == []
    speech = ev(
        "call.speech", "s1", callId=call_id, transcript="At noon", turnToken=listen.turn_token
    )
    out = manager.handle_event(speech, now_ms=T0 + 2000)
    assert of(out, cmd.ResolveWaiter)[0].result == {"success": True, "transcript": "At noon"}
    assert of(out, cmd.StopListening) and of(out, cmd.RunAutoResponse) == []
    meta = manager.get_record(call_id).metadata  # type: ignore[union-attr]
    assert meta["turnCount"] == 1 and meta["lastTurnLatencyMs"] == 1000
    assert meta["lastTurnListenWaitMs"] == 500 and meta["lastTurnCompletedAt"] == T0 + 2000
    assert meta["turns"][-1] == {
        "n": 1, "kind": "continue", "startedAt": T0 + 1000, "completedAt": T0 + 2000,
        "latencyMs": 1000, "listenWaitMs": 500,
    }  # fmt: skip


def test_continue_times_out_with_the_spec_text() -> None:
    """No transcript before transcriptTimeoutMs rejects with the exact timeout text."""
    manager, _ = make(transcriptTimeoutMs=5000)
    call_id, _, _ = answered(manager, mode="conversation")
    out = manager.continue_call(call_id, "Hello?", waiter_id="turn", now_ms=T0)
    out = finish(manager, out, cmd.PlayTts)
    assert of(out, cmd.StartTimer)[0].due_ms == T0 + 5000
    out = manager.timer_expired(call_id, TimerKind.TRANSCRIPT, now_ms=T0 + 5000)
    assert (
        of(out, cmd.RejectWaiter)[0].message == "timed out waiting for caller transcript (5000 ms)"
    )
    manager.continue_call(call_id, "Still there?", waiter_id="t2", now_ms=T0 + 5001)


def test_call_end_rejects_the_waiting_turn() -> None:
    """If the caller hangs up mid-turn, the waiter fails with 'Call ended: <reason>'."""
    manager, _ = make()
    call_id, _, _ = answered(manager, mode="conversation")
    manager.continue_call(call_id, "Hi", waiter_id="turn", now_ms=T0)
    out = manager.handle_event(
        ev("call.ended", "end", callId=call_id, reason="hangup-user"), now_ms=T0
    )
    reject = of(out, cmd.RejectWaiter)[0]
    assert reject.waiter_id == "turn" and reject.message == "Call ended: hangup-user"


def test_speak_errors_name_the_problem() -> None:
    """speak on unknown, unconnected and ended calls fails with the §2.6 messages."""
    manager, _ = make()
    with pytest.raises(UnknownCallError, match=r"^call not found: nope$"):
        manager.speak("nope", "x", waiter_id="w", now_ms=T0)
    call_id, _ = manager.initiate(OutboundRequest(), waiter_id="w", now_ms=T0)
    with pytest.raises(CallError, match=r"^call is not connected yet$"):
        manager.speak(call_id, "x", waiter_id="w", now_ms=T0)
    manager.handle_event(ev("call.ended", "e", callId=call_id, reason="no-answer"), now_ms=T0)
    with pytest.raises(CallEndedError) as info:
        manager.speak(call_id, "x", waiter_id="w", now_ms=T0)
    assert str(info.value) == (
        "call is not active (last state=no-answer, endReason=no-answer, "
        "endedAt=2023-11-14T22:13:20.000Z)"
    )


def test_end_is_idempotent_and_shares_one_hangup() -> None:
    """Two concurrent ends send one hangup; both succeed; ending again succeeds at once."""
    manager, _ = make()
    call_id, _, _ = answered(manager)
    first = manager.end_call(call_id, waiter_id="e1", now_ms=T0)
    assert manager.end_call(call_id, waiter_id="e2", now_ms=T0) == []
    out = manager.carrier_result(of(first, cmd.HangUp)[0].op_id, now_ms=T0, error="404", gone=True)
    assert {c.waiter_id for c in of(out, cmd.ResolveWaiter)} == {"e1", "e2"}
    assert of(manager.end_call(call_id, waiter_id="e3", now_ms=T0), cmd.ResolveWaiter)


# ---- auto-responder ---------------------------------------------------------------------------


def test_unclaimed_caller_speech_asks_the_agent_and_stale_replies_are_dropped() -> None:
    """A final transcript without a waiter triggers a reply; newer speech supersedes it."""
    manager, _ = make()
    call_id, _, out = answered(manager, mode="conversation", message="Hi there")
    finish(manager, out, cmd.PlayTts)
    out = manager.handle_event(
        ev("call.speech", "s1", callId=call_id, transcript="Hello"), now_ms=T0
    )
    run = of(out, cmd.RunAutoResponse)[0]
    assert run.opening_lines == ("Hi there",)
    manager.handle_event(
        ev("call.speech", "s2", callId=call_id, transcript="wai", isFinal=False), now_ms=T0
    )
    stale = manager.auto_reply_ready(call_id, run.reply_id, "Sure", now_ms=T0 + 10)
    assert of(stale, cmd.PlayTts) == []
    assert of(stale, cmd.LogMessage)[0].message == "discarding superseded automatic reply"


def test_auto_reply_is_spoken_then_listens_and_records_an_auto_turn() -> None:
    """A current reply is spoken, then listening starts; metadata.turns gets an auto entry."""
    manager, _ = make()
    call_id, _, out = answered(manager, mode="conversation")
    out = manager.handle_event(ev("call.speech", "s1", callId=call_id, transcript="Hi"), now_ms=T0)
    run = of(out, cmd.RunAutoResponse)[0]
    out = manager.auto_reply_ready(call_id, run.reply_id, "Hello!", now_ms=T0 + 700)
    out = finish(manager, out, cmd.PlayTts)
    assert of(out, cmd.StartListening)
    turn = manager.get_record(call_id).metadata["turns"][-1]  # type: ignore[union-attr]
    assert turn["kind"] == "auto" and turn["responseMs"] == 700


def test_dtmf_is_recorded_and_collected_for_the_agent() -> None:
    """Caller digits go to metadata.dtmfReceived and, after the window, to the agent."""
    manager, _ = make()
    call_id, _, _ = answered(manager, mode="conversation")
    manager.handle_event(ev("call.dtmf", "d1", callId=call_id, digits="1"), now_ms=T0)
    out = manager.handle_event(ev("call.dtmf", "d2", callId=call_id, digits="2#"), now_ms=T0 + 500)
    assert of(out, cmd.StartTimer)[0].due_ms == T0 + 2000
    out = manager.timer_expired(call_id, TimerKind.DTMF_COLLECT, now_ms=T0 + 2000)
    assert of(out, cmd.RunAutoResponse)[0].message == "[caller pressed keys: 12#]"
    assert manager.get_record(call_id).metadata["dtmfReceived"] == "12#"  # type: ignore[union-attr]


def test_notify_calls_get_no_auto_response() -> None:
    """Outbound notify calls never hand caller speech to the agent."""
    manager, _ = make()
    call_id, _, _ = answered(manager, message="Bye")
    out = manager.handle_event(
        ev("call.speech", "s", callId=call_id, transcript="What?"), now_ms=T0
    )
    assert of(out, cmd.RunAutoResponse) == []


# ---- timers --------------------------------------------------------------------------------------


def test_max_duration_ends_the_call_with_timeout() -> None:
    """Max duration counts from answeredAt and ends the call as timeout."""
    manager, _ = make(maxDurationSeconds=60)
    call_id, _, out = answered(manager, mode="conversation")
    assert of(out, cmd.StartTimer)[0].due_ms == T0 + 60_000
    out = manager.timer_expired(call_id, TimerKind.MAX_DURATION, now_ms=T0 + 60_000)
    finish(manager, out, cmd.HangUp, T0 + 60_001)
    record = manager.get_record(call_id)
    assert record is not None and record.end_reason == "timeout"


def test_stale_reaper_ends_old_unanswered_calls_only() -> None:
    """The reaper ends unanswered calls older than the threshold and re-arms itself."""
    manager, _ = make(staleCallReaperSeconds=120, maxConcurrentCalls=3)
    assert of(manager.start(now_ms=T0), cmd.StartTimer)[0].kind is TimerKind.STALE_REAPER
    stale_id, _ = placed(manager)
    live_id, _, _ = answered(manager)
    out = manager.timer_expired("", TimerKind.STALE_REAPER, now_ms=T0 + 121_000)
    assert [h.call_id for h in of(out, cmd.HangUp)] == [stale_id]
    assert of(out, cmd.StartTimer)[0].due_ms == T0 + 151_000
    finish(manager, out, cmd.HangUp)
    assert manager.get_record(stale_id).end_reason == "timeout"  # type: ignore[union-attr]
    assert manager.get_record(live_id).ended_at_ms is None  # type: ignore[union-attr]


def test_stream_disconnect_grace_supersede_and_reconnect() -> None:
    """Only the current stream's close arms the 2 s grace; a reconnect cancels it."""
    manager, _ = make()
    call_id, _, _ = answered(manager, mode="conversation")
    manager.stream_connected(call_id, "s1", now_ms=T0)
    manager.stream_connected(call_id, "s2", now_ms=T0)
    assert manager.stream_disconnected(call_id, "s1", now_ms=T0) == []
    out = manager.stream_disconnected(call_id, "s2", now_ms=T0)
    assert of(out, cmd.StartTimer)[0].due_ms == T0 + 2000
    assert of(manager.stream_connected(call_id, "s3", now_ms=T0 + 500), cmd.CancelTimer)
    manager.stream_disconnected(call_id, "s3", now_ms=T0 + 600)
    out = manager.timer_expired(call_id, TimerKind.STREAM_GRACE, now_ms=T0 + 2600)
    assert "stream-disconnect-grace-expired" in of(out, cmd.LogMessage)[0].message
    assert of(out, cmd.HangUp)


# ---- recovery and shutdown ---------------------------------------------------------------------


def _snapshot(call_id: str, state: str, started: int, **extra: Any) -> dict[str, Any]:
    return {
        "callId": call_id, "provider": "mock", "direction": "outbound", "state": state,
        "from": "+1555", "to": "+1556", "startedAt": started, **extra,
    }  # fmt: skip


def test_restore_checks_live_calls_and_times_out_old_ones() -> None:
    """Restart: too-old calls end as timeout, others get a status check; dedupe survives."""
    manager, _ = make(maxDurationSeconds=300)
    out = manager.restore(
        [
            _snapshot("old", "listening", T0 - 400_000, providerCallId="P-old"),
            _snapshot("live", "listening", T0 - 1000, providerCallId="P-live", answeredAt=T0 - 900,
                      processedEventIds=["seen"]),
            _snapshot("gone", "listening", T0 - 1000, providerCallId="P-gone"),
            _snapshot("nopcid", "ringing", T0 - 1000),
            _snapshot("done", "completed", T0 - 1000, providerCallId="P-done"),
        ],
        now_ms=T0,
    )  # fmt: skip
    assert manager.get_record("old").end_reason == "timeout"  # type: ignore[union-attr]
    assert [h.call_id for h in of(out, cmd.HangUp)] == ["old"]
    checks = {c.call_id: c for c in of(out, cmd.CheckCallStatus)}
    assert set(checks) == {"live", "gone"}
    resumed = manager.carrier_result(checks["live"].op_id, now_ms=T0, terminal=False)
    assert of(resumed, cmd.StartTimer)[0].due_ms == T0 - 900 + 300_000
    manager.carrier_result(checks["gone"].op_id, now_ms=T0, terminal=True)
    assert manager.get_record("gone").end_reason == "completed"  # type: ignore[union-attr]
    assert manager.get_record("nopcid") is None
    assert "seen" in manager.seen_event_keys()


def test_stop_rejects_waiters_and_refuses_new_work() -> None:
    """Stopping rejects a waiting turn and later operations fail with 'is stopping'."""
    manager, _ = make()
    call_id, _, _ = answered(manager, mode="conversation")
    manager.continue_call(call_id, "Hi", waiter_id="turn", now_ms=T0)
    out = manager.stop()
    assert any(r.message == "voicecall runtime stopped" for r in of(out, cmd.RejectWaiter))
    with pytest.raises(CallError, match=r"^voicecall runtime is stopping$"):
        manager.speak(call_id, "x", waiter_id="w", now_ms=T0)
    assert manager.get_record(call_id).ended_at_ms is None  # type: ignore[union-attr]


def test_status_payload_shapes() -> None:
    """status: one call by id or provider sid, all live calls, or not found."""
    manager, _ = make()
    call_id, pcid = placed(manager)
    by_id = manager.status(call_id)
    assert by_id["found"] and set(by_id["call"]) == {
        "callId", "providerCallId", "provider", "direction", "state", "from", "to", "startedAt"
    }  # fmt: skip
    assert manager.status(sid=pcid)["call"]["callId"] == call_id
    assert [c["callId"] for c in manager.status()["calls"]] == [call_id]
    assert manager.status("nope") == {"found": False}
