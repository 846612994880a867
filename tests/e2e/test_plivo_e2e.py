"""`voicecall serve` on provider plivo against the fake Plivo: the call flows of SPEC §3.4."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Gateway
from tests.fakes.plivo import FakeCall, FakePlivo

pytestmark = pytest.mark.e2e

FROM = "+15550001000"
FRIEND = "+15550002222"
STRANGER = "+15550009999"


def gateway_for(home: Path, fake: FakePlivo) -> Gateway:
    """A `voicecall serve` child configured for the fake Plivo."""
    config: dict[str, Any] = {
        "provider": "plivo",
        "fromNumber": FROM,
        "plivo": {
            "authId": fake.auth_id,
            "authToken": fake.auth_token,
            "apiBaseUrl": fake.api_base_url,
        },
        "inboundPolicy": "allowlist",
        "allowFrom": [FRIEND],
        "inboundGreeting": "Hi friend, how can I help?",
        "maxConcurrentCalls": 4,
    }
    return Gateway(home, config)


async def inbound_record(gateway: Gateway, call: FakeCall) -> dict[str, Any]:
    """The last persisted record of an inbound call, found by its CallUUID, once it has ended."""
    return await gateway.wait_record(call.call_uuid, lambda r: r.get("endedAt"), "providerCallId")


@pytest.fixture
async def fake() -> AsyncIterator[FakePlivo]:
    async with FakePlivo(duplicate_every=2, late_every=3) as plivo:
        yield plivo


@pytest.fixture
async def served(tmp_path: Path, fake: FakePlivo) -> AsyncIterator[Gateway]:
    gateway = gateway_for(tmp_path, fake)
    try:
        await gateway.start()
        yield gateway
    finally:
        await fake.aclose_calls()
        await gateway.aclose()


def fake_call(fake: FakePlivo, record: dict[str, Any]) -> FakeCall:
    return fake.calls[record["providerCallId"]]


async def test_outbound_notify_speaks_and_hangs_up(served: Gateway, fake: FakePlivo) -> None:
    """A notify call's answer XML speaks the message and hangs up; no transfer is needed."""
    gateway = served
    result = await gateway.rpc(
        "voicecall.initiate", to="+15550003333", message="Your order & more", mode="notify"
    )
    record = await gateway.ended(result["callId"])
    call = fake_call(fake, record)
    assert call.heard == ["Your order & more"]
    assert call.documents[0] == (
        '<Response><Speak language="en-US">Your order &amp; more</Speak><Hangup /></Response>'
    )
    assert record["endReason"] == "completed"
    assert [m for m, _, _ in fake.requests] == ["POST"]  # create only


async def test_two_turn_conversation(served: Gateway, fake: FakePlivo) -> None:
    """The opening line and two agent replies are heard; both caller answers are transcribed."""
    gateway = served
    result = await gateway.rpc(
        "voicecall.initiate",
        to="+15550004444",
        message="Can we meet at six?",
        mode="conversation",
    )
    record = await gateway.ended(result["callId"])
    call = fake_call(fake, record)
    transcript = [(e["speaker"], e["text"]) for e in record["transcript"]]
    assert [speaker for speaker, _ in transcript] == ["bot", "user", "bot", "user", "bot"]
    assert [text for speaker, text in transcript if speaker == "user"] == [
        "Yes, that works for me.",
        "Thanks, goodbye.",
    ]
    assert call.heard == [text for speaker, text in transcript if speaker == "bot"]
    assert len(record["metadata"]["turns"]) == 2
    assert record["endReason"] == "completed"


async def test_inbound_allowlisted_caller_is_greeted(served: Gateway, fake: FakePlivo) -> None:
    """A caller on the allowlist hears the greeting and gets an answer to their question."""
    gateway = served
    call = fake.dial_in(
        from_number=FRIEND,
        to_number=FROM,
        answer_url=gateway.webhook_url,
        hangup_url=gateway.webhook_url,
        script=["What time do you open?"],
    )
    await fake.wait_ended(call)
    record = await inbound_record(gateway, call)
    assert call.heard[0] == "Hi friend, how can I help?"
    assert len(call.heard) == 2 and call.hangup_reason is None
    assert (record["direction"], record["from"]) == ("inbound", FRIEND)
    assert [e["text"] for e in record["transcript"] if e["speaker"] == "user"] == [
        "What time do you open?"
    ]


async def test_inbound_stranger_rejected_in_band_without_rest_hangup(
    served: Gateway, fake: FakePlivo
) -> None:
    """A stranger is refused by the answer XML itself; a retried fetch never hangs up via REST."""
    gateway = served
    call = fake.dial_in(
        from_number=STRANGER,
        to_number=FROM,
        answer_url=gateway.webhook_url,
        hangup_url=gateway.webhook_url,
    )
    await fake.wait_ended(call)
    reject = '<Response><Hangup reason="rejected" /></Response>'
    assert call.documents == [reject] and call.hangup_reason == "rejected"
    first_fetch = next(p for p in fake.posted if p.params["CallUUID"] == call.call_uuid)
    retried = await fake.post(gateway.webhook_url, dict(first_fetch.params))
    assert retried is not None and retried.body == reject
    record = await inbound_record(gateway, call)
    assert record["endReason"] == "hangup-bot"
    assert record["metadata"]["rejectionReason"] == "inbound-policy"
    assert [m for m, _, _ in fake.requests if m == "DELETE"] == [] and call.rest_hangups == 0


async def test_dtmf_is_sent_with_the_dtmf_api(served: Gateway, fake: FakePlivo) -> None:
    """`voicecall.dtmf` plays the digits on the live call; pre-connect digits ride on create."""
    gateway = served
    fake.script = ["Sure, go ahead."]
    result = await gateway.rpc(
        "voicecall.initiate",
        to="+15550005555",
        message="Connecting you to the extension.",
        mode="conversation",
        dtmfSequence="12w#",
    )
    call_id = result["callId"]
    await gateway.wait_call(call_id, "answeredAt")
    assert fake.requests[0][2]["send_digits"] == "12w#"
    assert await gateway.rpc("voicecall.dtmf", callId=call_id, digits="345") == {"success": True}
    call = fake_call(fake, await gateway.call(call_id))
    assert call.dtmf_received == ["345"]
    assert await gateway.rpc("voicecall.end", callId=call_id) == {"success": True}
    record = await gateway.ended(call_id)
    assert record["endReason"] == "hangup-bot"
    assert [p for m, p, _ in fake.requests if m == "DELETE"] == [
        f"/v1/Account/{fake.auth_id}/Call/{call.call_uuid}/"
    ]


async def test_callee_hangs_up(served: Gateway, fake: FakePlivo) -> None:
    """When the callee hangs up mid-call the call ends from Plivo's hangup callback alone."""
    gateway = served
    fake.script = ["Let me think about it."]
    result = await gateway.rpc(
        "voicecall.initiate", to="+15550006666", message="Hello!", mode="conversation"
    )
    call_id = result["callId"]
    await gateway.wait_call(call_id, "answeredAt")
    call = fake_call(fake, await gateway.call(call_id))
    fake.callee_hangs_up(call)
    record = await gateway.ended(call_id)
    assert record["endReason"] == "completed"
    assert [m for m, _, _ in fake.requests if m == "DELETE"] == []
    assert await gateway.stop() == 0
