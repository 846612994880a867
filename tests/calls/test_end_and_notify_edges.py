"""Edge cases of ending calls and notify calls: whose hangup it was, and notify under streaming."""

from __future__ import annotations

import itertools
from typing import Any

from voicecall.calls import commands as cmd
from voicecall.calls.admission import OutboundRequest
from voicecall.calls.commands import Command
from voicecall.calls.events import event_from_dict
from voicecall.calls.manager import CallManager
from voicecall.calls.state import CallState
from voicecall.config import VoicecallConfig

T0 = 1_700_000_000_000


def manager(provider: str = "telnyx", **overrides: Any) -> CallManager:
    data: dict[str, Any] = {
        "provider": provider,
        "fromNumber": "+15550002222",
        "publicUrl": "https://voice.example.com/voice/webhook",
    }
    data.update(overrides)
    counter = itertools.count(1)
    return CallManager(
        VoicecallConfig.model_validate(data),
        supports_pre_connect_dtmf=True,
        new_id=lambda: f"id{next(counter)}",
    )


def ev(type_: str, id_: str, **fields: Any) -> Any:
    return event_from_dict({"type": type_, "id": id_, "timestamp": T0, **fields})


def of(commands: list[Command], kind: type[Any]) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def placed_and_answered(
    m: CallManager, mode: str, message: str = "Hi"
) -> tuple[str, list[Command]]:
    """Admit, dial and answer one outbound call; returns (callId, commands of the answer)."""
    call_id, out = m.initiate(
        OutboundRequest(to="+15550001111", message=message, mode=mode), waiter_id="w", now_ms=T0
    )
    place = of(out, cmd.PlaceCall)[0]
    m.carrier_result(place.op_id, now_ms=T0, provider_call_id="pc1")
    answered = m.handle_event(ev("call.answered", "a1", providerCallId="pc1"), now_ms=T0 + 10)
    return call_id, answered


def test_carrier_completion_during_our_hangup_ends_as_hangup_bot() -> None:
    """`end` on a call whose carrier reports `completed` before the hangup reply ends hangup-bot."""
    m = manager()
    call_id, _ = placed_and_answered(m, "conversation")
    out = m.end_call(call_id, waiter_id="end", now_ms=T0 + 100)
    assert of(out, cmd.HangUp)
    done = m.handle_event(
        ev("call.ended", "e1", providerCallId="pc1", reason="completed"), now_ms=T0 + 110
    )
    record = m.get_record(call_id)
    assert record is not None and record.state is CallState.HANGUP_BOT
    assert [w.waiter_id for w in of(done, cmd.ResolveWaiter)] == ["end"]


def test_callee_hangup_without_our_hangup_stays_completed() -> None:
    """A call the far end completes on its own keeps the carrier's reason."""
    m = manager()
    call_id, _ = placed_and_answered(m, "conversation")
    m.handle_event(ev("call.ended", "e1", providerCallId="pc1", reason="completed"), now_ms=T0)
    record = m.get_record(call_id)
    assert record is not None and record.state is CallState.COMPLETED


def test_notify_call_speaks_on_answer_even_with_streaming_enabled() -> None:
    """Notify calls never open media streams, so they speak their message on answer."""
    m = manager(streaming={"enabled": True})
    _, answered = placed_and_answered(m, "notify", message="Your package arrived")
    assert [p.text for p in of(answered, cmd.PlayTts)] == ["Your package arrived"]


def test_conversation_call_with_streaming_waits_for_the_stream() -> None:
    """A streamed conversation call does not speak through carrier TTS on answer."""
    m = manager(streaming={"enabled": True})
    _, answered = placed_and_answered(m, "conversation", message="Hello")
    assert of(answered, cmd.PlayTts) == []


def test_pre_connect_dtmf_is_recorded_as_sent_when_the_call_connects() -> None:
    """A conversation call's dtmfSequence appears as metadata.dtmfSent once it is answered."""
    m = manager()
    call_id, out = m.initiate(
        OutboundRequest(to="+15550001111", message="Hi", mode="conversation", dtmf_sequence="12w#"),
        waiter_id="w",
        now_ms=T0,
    )
    m.carrier_result(of(out, cmd.PlaceCall)[0].op_id, now_ms=T0, provider_call_id="pc1")
    record = m.get_record(call_id)
    assert record is not None and "dtmfSent" not in record.metadata
    m.handle_event(ev("call.answered", "a1", providerCallId="pc1"), now_ms=T0 + 10)
    assert record.metadata["dtmfSent"] == "12w#"
