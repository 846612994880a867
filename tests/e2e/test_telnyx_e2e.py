"""`voicecall serve` against a fake Telnyx: signed webhooks in, Call Control commands out."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Gateway
from tests.fakes.telnyx import FakeTelnyx

pytestmark = pytest.mark.e2e

ALLOWED = "+15550003333"
STRANGER = "+15550009999"
OUR_NUMBER = "+15550001111"
CALLEE = "+15550002222"


def _state(call_id: str, turn: str | None = None) -> str:
    text = call_id if turn is None else f"{call_id}|{turn}"
    return base64.b64encode(text.encode()).decode()


def gateway_for(home: Path, fake: FakeTelnyx) -> Gateway:
    """A `voicecall serve` child configured for the fake Telnyx."""
    config: dict[str, Any] = {
        "provider": "telnyx",
        "fromNumber": OUR_NUMBER,
        "telnyx": {
            "apiKey": fake.api_key,
            "connectionId": fake.connection_id,
            "publicKey": fake.public_key_b64,
            "apiBaseUrl": fake.base_url,
        },
        "outbound": {"notifyHangupDelaySec": 0},
        "inboundPolicy": "allowlist",
        "allowFrom": [ALLOWED],
        "inboundGreeting": "Hi, thanks for calling.",
    }
    return Gateway(home, config)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelnyx]:
    telnyx = FakeTelnyx(redeliver_every=3, reorder_every=4)
    await telnyx.start()
    yield telnyx
    await telnyx.close()


@pytest.fixture
async def gateway(tmp_path: Path, fake: FakeTelnyx) -> AsyncIterator[Gateway]:
    served = gateway_for(tmp_path, fake)
    fake.connection_webhook_url = served.webhook_url
    await served.start()
    yield served
    if served.process is not None and served.process.returncode is None:
        assert await served.stop() == 0, served.log()
    await served.aclose()


def _only(fake: FakeTelnyx) -> str:
    (ccid,) = fake.calls
    return ccid


def _bodies(fake: FakeTelnyx, ccid: str, action: str) -> list[dict[str, Any]]:
    return [r.body for r in fake.rest if r.call_control_id == ccid and r.action == action]


async def test_outbound_notify_speaks_then_hangs_up_after_speak_ended(
    gateway: Gateway, fake: FakeTelnyx
) -> None:
    """A notify call dials, speaks the message, and hangs up only after call.speak.ended."""
    result = await gateway.rpc(
        "voicecall.initiate", to=CALLEE, message="Your parcel has arrived.", mode="notify"
    )
    call_id = result["callId"]
    call = await gateway.wait_call(call_id, "endedAt")
    assert call["endReason"] == "hangup-bot"
    ccid = _only(fake)
    (dial,) = [r.body for r in fake.rest if r.action is None and r.method == "POST"]
    assert dial["client_state"] == _state(call_id)
    assert dial["webhook_url"] == gateway.webhook_url
    assert dial["timeout_secs"] == 30
    assert fake.calls[ccid].heard == ["Your parcel has arrived."]
    assert _bodies(fake, ccid, "hangup")
    timeline = fake.timeline
    assert timeline.index("hook:call.speak.ended") < timeline.index("rest:hangup")
    (spoken,) = gateway.last_record(call_id)["transcript"]
    assert (spoken["speaker"], spoken["text"]) == ("bot", "Your parcel has arrived.")


async def test_two_turn_conversation(gateway: Gateway, fake: FakeTelnyx) -> None:
    """Each continue speaks, listens with its turn token in client_state and returns the answer."""
    result = await gateway.rpc(
        "voicecall.initiate", to=CALLEE, message="Hi, this is the clinic.", mode="conversation"
    )
    call_id = result["callId"]
    ccid = await _wait_ccid(fake)
    await fake.wait_for(lambda: fake.calls[ccid].heard == ["Hi, this is the clinic."])
    answers: list[str] = []
    for question, reply in (("Is Tuesday good?", "Tuesday works."), ("See you?", "Goodbye.")):
        turn = asyncio.create_task(
            gateway.rpc("voicecall.continue", callId=call_id, message=question)
        )
        await fake.wait_for(_more_turn_listens(fake, ccid))
        fake.callee_says(ccid, reply)
        answers.append((await turn)["transcript"])
    assert answers == ["Tuesday works.", "Goodbye."]
    assert await gateway.rpc("voicecall.end", callId=call_id) == {"success": True}
    call = await gateway.wait_call(call_id, "endedAt")
    assert call["endReason"] == "hangup-bot"
    assert fake.calls[ccid].heard == ["Hi, this is the clinic.", "Is Tuesday good?", "See you?"]
    states = [
        base64.b64decode(b["client_state"]).decode()
        for b in _bodies(fake, ccid, "transcription_start")
    ]
    assert states[0] == call_id  # the listen after the opening line belongs to no turn
    tagged = [s for s in states if s.startswith(f"{call_id}|")]
    assert len(tagged) == 2 and len(set(tagged)) == 2  # one token per turn
    record = gateway.last_record(call_id)
    user_lines = [t["text"] for t in record["transcript"] if t["speaker"] == "user"]
    assert user_lines == ["Tuesday works.", "Goodbye."]
    assert record["metadata"]["turnCount"] == 2


def _more_turn_listens(fake: FakeTelnyx, ccid: str) -> Callable[[], bool]:
    """A predicate: a turn-tagged transcription_start arrived since this call."""
    before = _turn_listens(fake, ccid)
    return lambda: _turn_listens(fake, ccid) > before


def _turn_listens(fake: FakeTelnyx, ccid: str) -> int:
    """How many transcription_start commands carried a turn token (``callId|token``)."""
    return sum(
        "|" in base64.b64decode(b["client_state"]).decode()
        for b in _bodies(fake, ccid, "transcription_start")
    )


async def test_inbound_allowlisted_caller_is_answered_and_greeted(
    gateway: Gateway, fake: FakeTelnyx
) -> None:
    """An allowlisted caller is answered once with our callId and hears the greeting."""
    ccid = fake.place_inbound_call(from_number=ALLOWED, to_number=OUR_NUMBER)
    await fake.wait_for(lambda: "Hi, thanks for calling." in fake.calls[ccid].heard)
    (answer,) = _bodies(fake, ccid, "answer")
    record = next(r for r in gateway.records() if r.get("providerCallId") == ccid)
    assert answer["client_state"] == _state(record["callId"])
    assert record["direction"] == "inbound" and record["from"] == ALLOWED
    fake.callee_hangs_up(ccid)
    call = await gateway.wait_call(record["callId"], "endedAt")
    assert call["endReason"] == "completed"  # normal_clearing, SPEC §3.3
    assert _bodies(fake, ccid, "hangup") == []


async def test_inbound_stranger_gets_exactly_one_hangup(tmp_path: Path) -> None:
    """A caller outside the allowlist is hung up once, even when every webhook is redelivered."""
    fake = FakeTelnyx(redeliver_every=1)
    await fake.start()
    served = gateway_for(tmp_path, fake)
    fake.connection_webhook_url = served.webhook_url
    await served.start()
    try:
        ccid = fake.place_inbound_call(from_number=STRANGER, to_number=OUR_NUMBER)
        await fake.wait_for(lambda: not fake.calls[ccid].alive)
        await fake.wait_for(
            lambda: sum(d.event_type == "call.hangup" for d in fake.deliveries) >= 2
        )
        initiated = [d for d in fake.deliveries if d.event_type == "call.initiated"]
        assert len(initiated) == 2 and all(d.status == 200 for d in initiated)
        assert fake.actions(ccid) == ["hangup"]
        (record,) = {r["callId"]: r for r in served.records()}.values()
        assert record["endReason"] == "hangup-bot"
        assert record["metadata"]["rejectionReason"] == "inbound-policy"
    finally:
        assert await served.stop() == 0, served.log()
        await served.aclose()
        await fake.close()


async def test_dtmf_before_and_after_connect(gateway: Gateway, fake: FakeTelnyx) -> None:
    """Pre-connect DTMF plays before the greeting; later digits go out with send_dtmf."""
    result = await gateway.rpc(
        "voicecall.initiate",
        to=CALLEE,
        message="Connecting you now.",
        mode="conversation",
        dtmfSequence="12w#",
    )
    call_id = result["callId"]
    ccid = await _wait_ccid(fake)
    await fake.wait_for(lambda: "Connecting you now." in fake.calls[ccid].heard)
    actions = fake.actions(ccid)
    assert actions.index("send_dtmf") < actions.index("speak")
    assert await gateway.rpc("voicecall.dtmf", callId=call_id, digits="9p*") == {"success": True}
    assert [b["digits"] for b in _bodies(fake, ccid, "send_dtmf")] == ["12w#", "9w*"]
    assert all(b["duration_millis"] == 250 for b in _bodies(fake, ccid, "send_dtmf"))
    fake.caller_presses(ccid, "42")
    # Telnyx does not promise order between webhooks; both digits arrive, once each.
    await gateway.wait_record(
        call_id, lambda r: sorted(r["metadata"].get("dtmfReceived", "")) == ["2", "4"]
    )
    await gateway.rpc("voicecall.end", callId=call_id)


async def test_callee_hang_up_ends_the_call(gateway: Gateway, fake: FakeTelnyx) -> None:
    """When the callee hangs up, the call ends with the mapped reason and no hangup is sent."""
    result = await gateway.rpc(
        "voicecall.initiate", to=CALLEE, message="Quick question.", mode="conversation"
    )
    call_id = result["callId"]
    ccid = await _wait_ccid(fake)
    await fake.wait_for(lambda: bool(fake.calls[ccid].heard))
    fake.callee_hangs_up(ccid, cause="user_hangup")
    call = await gateway.wait_call(call_id, "endedAt")
    assert call["endReason"] == "hangup-user"
    assert "hangup" not in fake.actions(ccid)


async def _wait_ccid(fake: FakeTelnyx) -> str:
    await fake.wait_for(lambda: len(fake.calls) == 1)
    return _only(fake)
