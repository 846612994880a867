"""Carrier-facing hooks of the call manager: the inbound capacity queue, the one-shot initial
message and in-band rejection of strangers (SPEC §3.2 T-QUEUE/T-SPEAK/T-REJECT, §2.5, §12)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.calls import commands as cmd
from voicecall.calls.admission import OutboundRequest
from voicecall.calls.commands import Command, TimerKind
from voicecall.calls.events import event_from_dict
from voicecall.calls.manager import CallManager
from voicecall.calls.state import CallState
from voicecall.config import VoicecallConfig

T0 = 1_700_000_000_000
STRANGER = "+15550008888"
FRIEND = "+15550007777"
DEFAULT_GREETING = "Hello! How can I help you today?"


def twilio(*, queue: bool = True, **overrides: Any) -> CallManager:
    """A manager for a Twilio gateway, which can hold inbound callers in a queue."""
    data: dict[str, Any] = {
        "provider": "twilio",
        "fromNumber": "+15550002222",
        "toNumber": "+15550001111",
        "publicUrl": "https://voice.example.com/voice/webhook",
        "inboundPolicy": "open",
    }
    data.update(overrides)
    counter = itertools.count(1)
    return CallManager(
        VoicecallConfig.model_validate(data),
        supports_inbound_queue=queue,
        new_id=lambda: f"id{next(counter)}",
    )


def of(commands: list[Command], kind: type[Any]) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def ev(type_: str, id_: str, **fields: Any) -> Any:
    return event_from_dict({"type": type_, "id": id_, "timestamp": T0, **fields})


def ring_in(
    manager: CallManager, pcid: str, now_ms: int, caller: str = FRIEND, **fields: Any
) -> tuple[str, list[Command]]:
    """Deliver the first webhook of an inbound call; returns (callId, commands)."""
    event = ev(
        "call.initiated", f"in-{pcid}", providerCallId=pcid, direction="inbound",
        **{"from": caller, "to": "+15550002222"}, **fields,
    )  # fmt: skip
    out = manager.handle_event(event, now_ms=now_ms)
    record = manager.find_by_provider_id(pcid)
    assert record is not None
    return record.call_id, out


def hang_up_remote(manager: CallManager, pcid: str, now_ms: int, id_: str = "") -> list[Command]:
    """The carrier reports that the far end hung up (Twilio status callback `completed`)."""
    event = ev("call.ended", id_ or f"end-{pcid}", providerCallId=pcid, reason="completed")
    return manager.handle_event(event, now_ms=now_ms)


def is_queued(manager: CallManager, call_id: str) -> bool:
    view = manager.call_view(call_id)
    assert view is not None
    return view.queued


def dequeued(commands: list[Command]) -> list[str]:
    return [c.provider_call_id for c in of(commands, cmd.DequeueCall)]


# ---- the inbound capacity queue (T-QUEUE, I11) ------------------------------------------------


def test_inbound_call_at_capacity_is_registered_ringing_and_queued() -> None:
    """With every slot taken, a new inbound caller is a ringing call marked queued, not dequeued."""
    manager = twilio(maxConcurrentCalls=1)
    first, _ = ring_in(manager, "CA1", T0)
    second, out = ring_in(manager, "CA2", T0 + 10)
    assert not is_queued(manager, first)
    assert is_queued(manager, second)
    record = manager.get_record(second)
    assert record is not None and record.state is CallState.RINGING
    assert record.direction == "inbound"
    assert dequeued(out) == []
    snapshot = of(out, cmd.PersistRecord)[-1].snapshot
    assert snapshot["callId"] == second and snapshot["state"] == "ringing"


@pytest.mark.parametrize("gap_ms", [0, 5], ids=["same-ms", "apart"])
@pytest.mark.parametrize("ending", ["caller", "bot"])
def test_queued_callers_are_released_oldest_first_exactly_once(gap_ms: int, ending: str) -> None:
    """Each freed slot releases the longest-waiting queued caller through one DequeueCall."""
    manager = twilio(maxConcurrentCalls=1)
    busy, _ = ring_in(manager, "CA1", T0)
    b, _ = ring_in(manager, "CB", T0 + 100)
    c, _ = ring_in(manager, "CC", T0 + 100 + gap_ms)
    released: list[str] = []

    if ending == "caller":
        released += dequeued(hang_up_remote(manager, "CA1", T0 + 1000))
    else:
        out = manager.end_call(busy, waiter_id="w", now_ms=T0 + 1000)
        released += dequeued(out)
        released += dequeued(manager.carrier_result(of(out, cmd.HangUp)[0].op_id, now_ms=T0 + 1001))
    assert released == ["CB"]
    assert not is_queued(manager, b) and is_queued(manager, c)

    # A redelivered end of the same call frees nothing more.
    released += dequeued(hang_up_remote(manager, "CA1", T0 + 1100, id_="end-CA1-again"))
    released += dequeued(hang_up_remote(manager, "CA1", T0 + 1200))
    assert released == ["CB"]

    released += dequeued(hang_up_remote(manager, "CB", T0 + 2000))
    assert released == ["CB", "CC"]
    assert not is_queued(manager, c)
    released += dequeued(hang_up_remote(manager, "CC", T0 + 3000))
    assert released == ["CB", "CC"]
    assert manager.active_call_count == 0


def test_queued_caller_who_hangs_up_is_never_dequeued() -> None:
    """A caller who gives up while queued is ended, and the next slot goes to the caller after."""
    manager = twilio(maxConcurrentCalls=1)
    ring_in(manager, "CA1", T0)
    quitter, _ = ring_in(manager, "CB", T0 + 100)
    patient, _ = ring_in(manager, "CC", T0 + 200)

    out = hang_up_remote(manager, "CB", T0 + 300)
    assert dequeued(out) == []
    record = manager.get_record(quitter)
    assert record is not None and record.state is CallState.COMPLETED
    assert manager.call_view(quitter) is None

    released = dequeued(hang_up_remote(manager, "CA1", T0 + 400))
    assert released == ["CC"] and not is_queued(manager, patient)
    released += dequeued(hang_up_remote(manager, "CC", T0 + 500))
    released += dequeued(hang_up_remote(manager, "CB", T0 + 600, id_="late-CB"))
    assert released == ["CC"]


# An action on the model: a new caller rings in, or the n-th connected / queued caller hangs up.
_ACTIONS = st.lists(
    st.tuples(st.sampled_from(["arrive", "end-connected", "quit-queued"]), st.integers(0, 7)),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(max_calls=st.integers(1, 3), actions=_ACTIONS)
def test_queue_behaves_like_a_fifo_line_for_any_sequence(
    max_calls: int, actions: list[tuple[str, int]]
) -> None:
    """For any arrivals and hang-ups, slots never exceed the cap and the line moves FIFO."""
    manager = twilio(maxConcurrentCalls=max_calls)
    connected: list[str] = []
    line: list[str] = []
    ids: dict[str, str] = {}
    ever_released: list[str] = []
    now = T0
    for number, (action, index) in enumerate(actions):
        now += 1
        expected: list[str] = []
        if action == "arrive":
            pcid = f"CA{number}"
            ids[pcid], out = ring_in(manager, pcid, now)
            (connected if len(connected) + len(line) < max_calls else line).append(pcid)
        elif action == "end-connected" and connected:
            pcid = connected.pop(index % len(connected))
            if line:
                expected = [line.pop(0)]
                connected.extend(expected)
            out = hang_up_remote(manager, pcid, now)
        elif action == "quit-queued" and line:
            out = hang_up_remote(manager, line.pop(index % len(line)), now)
        else:
            continue
        assert dequeued(out) == expected
        ever_released += expected
        assert len(connected) <= max_calls
        for pcid in connected:
            assert not is_queued(manager, ids[pcid])
        for pcid in line:
            assert is_queued(manager, ids[pcid])
    assert len(ever_released) == len(set(ever_released))


# ---- the one-shot initial message (T-SPEAK, §2.5) --------------------------------------------


def _placed_conversation(manager: CallManager, message: str | None) -> str:
    request = OutboundRequest(message=message, mode="conversation")
    call_id, out = manager.initiate(request, waiter_id="w", now_ms=T0)
    manager.carrier_result(of(out, cmd.PlaceCall)[0].op_id, now_ms=T0, provider_call_id="CAOUT")
    return call_id


def test_claim_hands_out_the_initial_message_once_and_records_it_spoken() -> None:
    """The first claim gets the message, recorded as spoken; a re-fetched document gets nothing."""
    manager = twilio()
    call_id = _placed_conversation(manager, "Your parcel arrives today.")
    view = manager.call_view(call_id)
    assert view is not None and view.initial_pending

    message, out = manager.claim_initial_message(call_id, now_ms=T0 + 500)
    assert message == "Your parcel arrives today."
    snapshot = of(out, cmd.PersistRecord)[-1].snapshot
    assert [(e["speaker"], e["text"]) for e in snapshot["transcript"]] == [
        ("bot", "Your parcel arrives today.")
    ]
    assert "initialMessage" not in snapshot["metadata"]
    assert snapshot["state"] == "listening"
    assert TimerKind.MAX_DURATION in {t.kind for t in of(out, cmd.StartTimer)}
    view = manager.call_view(call_id)
    assert view is not None and not view.initial_pending

    # Twilio fetches the answer document again (a redirect or a retried request).
    refetch = manager.handle_event(ev("call.answered", "ans-2", callId=call_id), now_ms=T0 + 900)
    assert of(refetch, cmd.PlayTts) == []
    assert manager.claim_initial_message(call_id, now_ms=T0 + 901) == (None, [])
    record = manager.get_record(call_id)
    assert record is not None
    assert [e.text for e in record.transcript] == ["Your parcel arrives today."]


@pytest.mark.parametrize(
    ("overrides", "greeting"),
    [
        ({}, DEFAULT_GREETING),
        ({"inboundGreeting": "Thanks for calling."}, "Thanks for calling."),
        (
            {"inboundGreeting": "Thanks for calling.",
             "numbers": {"+15550002222": {"inboundGreeting": "Sales here."}}},
            "Sales here.",
        ),
    ],
    ids=["default", "global", "route"],
)  # fmt: skip
def test_claim_hands_out_the_inbound_greeting_once(
    overrides: dict[str, Any], greeting: str
) -> None:
    """An accepted inbound caller's greeting is claimed once, then later claims get nothing."""
    manager = twilio(**overrides)
    call_id, _ = ring_in(manager, "CAIN", T0)
    message, out = manager.claim_initial_message(call_id, now_ms=T0 + 20)
    assert message == greeting
    transcript = of(out, cmd.PersistRecord)[-1].snapshot["transcript"]
    assert [(e["speaker"], e["text"]) for e in transcript] == [("bot", greeting)]
    assert manager.claim_initial_message(call_id, now_ms=T0 + 40) == (None, [])
    assert manager.claim_initial_message(call_id, now_ms=T0 + 60) == (None, [])


def test_claim_gets_nothing_without_a_pending_message() -> None:
    """A call without an initial message, an ended call or an unknown id yields nothing to say."""
    manager = twilio()
    silent = _placed_conversation(manager, None)
    assert manager.claim_initial_message(silent, now_ms=T0) == (None, [])
    assert manager.claim_initial_message("no-such-call", now_ms=T0) == (None, [])
    caller, _ = ring_in(manager, "CAIN", T0)
    hang_up_remote(manager, "CAIN", T0 + 5)
    assert manager.claim_initial_message(caller, now_ms=T0 + 6) == (None, [])


# ---- in-band rejection of strangers (T-REJECT, I20, §12) --------------------------------------


def _stranger(id_: str, type_: str = "call.initiated") -> Any:
    return ev(
        type_, id_, providerCallId="CASTRANGE", direction="inbound",
        **{"from": STRANGER, "to": "+15550002222"},
    )  # fmt: skip


def _assert_rejected(manager: CallManager, out: list[Command]) -> None:
    snapshot = of(out, cmd.PersistRecord)[-1].snapshot
    assert snapshot["state"] == snapshot["endReason"] == "hangup-bot"
    assert snapshot["metadata"]["rejectionReason"] == "inbound-policy"
    assert snapshot["endedAt"] is not None
    record = manager.find_by_provider_id("CASTRANGE")
    assert record is not None and record.end_reason == "hangup-bot"
    assert manager.active_call_count == 0


def test_in_band_rejection_persists_the_refusal_and_never_hangs_up() -> None:
    """A stranger refused in the reply itself is recorded as rejected and gets no REST hangup."""
    manager = twilio(inboundPolicy="allowlist", allowFrom=[FRIEND])
    out = manager.handle_event(_stranger("v1"), now_ms=T0, in_band_rejection=True)
    _assert_rejected(manager, out)
    assert of(out, cmd.HangUp) == []

    later = [
        (_stranger("v1"), True),  # the same voice request, redelivered
        (_stranger("v2"), True),  # the voice request retried under a new key
        (_stranger("s1", "call.ringing"), False),  # a status callback for the same call
        (ev("call.ended", "s2", providerCallId="CASTRANGE", reason="completed"), False),
    ]
    for number, (event, in_band) in enumerate(later, start=1):
        out = manager.handle_event(event, now_ms=T0 + number, in_band_rejection=in_band)
        assert of(out, cmd.HangUp) == []
    record = manager.find_by_provider_id("CASTRANGE")
    assert record is not None and record.state is CallState.HANGUP_BOT


def test_stranger_without_in_band_rejection_gets_exactly_one_hangup() -> None:
    """Without an in-band refusal the stranger is hung up once, however often webhooks repeat."""
    manager = twilio(inboundPolicy="allowlist", allowFrom=[FRIEND])
    out = manager.handle_event(_stranger("v1"), now_ms=T0)
    _assert_rejected(manager, out)
    hangups = of(out, cmd.HangUp)
    assert [h.provider_call_id for h in hangups] == ["CASTRANGE"]

    total = len(hangups)
    total += len(of(manager.handle_event(_stranger("v1"), now_ms=T0 + 1), cmd.HangUp))
    total += len(
        of(manager.handle_event(_stranger("s1", "call.ringing"), now_ms=T0 + 2), cmd.HangUp)
    )
    manager.carrier_result(hangups[0].op_id, now_ms=T0 + 3)
    total += len(of(manager.handle_event(_stranger("v2"), now_ms=T0 + 4), cmd.HangUp))
    assert total == 1


def test_in_band_flag_does_not_affect_an_allowed_caller() -> None:
    """An allowlisted caller on a request that could refuse in band is registered normally."""
    manager = twilio(inboundPolicy="allowlist", allowFrom=[FRIEND])
    event = ev(
        "call.initiated", "f1", providerCallId="CAFRIEND", direction="inbound",
        **{"from": FRIEND, "to": "+15550002222"},
    )  # fmt: skip
    out = manager.handle_event(event, now_ms=T0, in_band_rejection=True)
    assert of(out, cmd.HangUp) == []
    record = manager.find_by_provider_id("CAFRIEND")
    assert record is not None and record.state is CallState.RINGING
    assert "rejectionReason" not in record.metadata
