"""`voicecall serve` on provider twilio against the fake Twilio: the call flows of SPEC §3.2."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Gateway
from tests.fakes.twilio import FakeTwilio, wait_for

pytestmark = pytest.mark.e2e

ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "fake-auth-token"
FROM = "+15550001000"
FRIEND = "+15550002222"


def gateway_for(home: Path, fake: FakeTwilio, extra: dict[str, Any] | None = None) -> Gateway:
    """A `voicecall serve` child configured for the fake Twilio."""
    config: dict[str, Any] = {
        "provider": "twilio",
        "fromNumber": FROM,
        "twilio": {"accountSid": ACCOUNT, "authToken": TOKEN, "apiBaseUrl": fake.base_url},
        "inboundPolicy": "allowlist",
        "allowFrom": [FRIEND],
        "inboundGreeting": "Hi friend, how can I help?",
        "maxConcurrentCalls": 4,
        **(extra or {}),
    }
    return Gateway(home, config)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    twilio = FakeTwilio(ACCOUNT, TOKEN)
    await twilio.start()
    yield twilio
    await twilio.close()


@pytest.fixture
async def gateway(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Gateway]:
    async with gateway_for(tmp_path, fake) as gw:
        yield gw


@pytest.fixture
async def start_gateway(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Any]:
    """Start a gateway with extra top-level config keys (one per test)."""
    started: list[Gateway] = []

    async def start(extra: dict[str, Any]) -> Gateway:
        gw = gateway_for(tmp_path, fake, extra)
        started.append(gw)
        await gw.start()
        return gw

    try:
        yield start
    finally:
        for gw in started:
            await gw.aclose()


async def test_outbound_notify_sends_inline_twiml(gateway: Gateway, fake: FakeTwilio) -> None:
    """A notify call carries its <Say> inline in the create request and never updates TwiML."""
    gw = gateway
    fake.retry_webhooks = True
    result = await gw.rpc(
        "voicecall.initiate", to="+15550003333", message="Your order & more", mode="notify"
    )
    create = fake.rest[0]
    form = dict(create.form)
    assert form["Twiml"].startswith('<Response><Say voice="Polly.Joanna">Your order &amp; more')
    assert "Url" not in form and form["Timeout"] == "30"
    assert [v for k, v in create.form if k == "StatusCallbackEvent"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    sid = next(iter(fake.calls))
    call = await fake.wait_ended(sid)
    assert call.heard == ["Your order & more"]
    record = await gw.ended(result["callId"])
    assert record["endReason"] == "completed"
    assert fake.rest_for(sid) == []  # no second speech update, no hangup
    assert all(status == 200 for _, _, status, _ in fake.webhooks)


async def test_two_turn_conversation_with_turn_tokens(gateway: Gateway, fake: FakeTwilio) -> None:
    """The first voice fetch speaks the opening; each continue gets the callee's answer."""
    gw = gateway
    fake.status_out_of_order = True
    fake.answer_lines = ["Tuesday works", "Around noon"]
    result = await gw.rpc(
        "voicecall.initiate", to="+15550004444", message="Hello there", mode="conversation"
    )
    call_id = result["callId"]
    sid = next(iter(fake.calls))
    await wait_for(lambda: fake.calls[sid].heard == ["Hello there"])
    first = await gw.rpc("voicecall.continue", callId=call_id, message="Which day?")
    second = await gw.rpc("voicecall.continue", callId=call_id, message="What time?")
    assert (first["transcript"], second["transcript"]) == ("Tuesday works", "Around noon")
    updates = [dict(r.form)["Twiml"] for r in fake.rest_for(sid) if "Twiml" in dict(r.form)]
    assert len(updates) == 2 and all("turnToken=" in doc for doc in updates)
    assert "turnToken=" not in fake.calls[sid].documents[0]
    await fake.hang_up(sid)
    record = await gw.ended(call_id)
    assert record["endReason"] == "completed"
    texts = [(t["speaker"], t["text"]) for t in record["transcript"]]
    assert texts[:2] == [("bot", "Hello there"), ("bot", "Which day?")]
    assert ("user", "Around noon") in texts


async def test_inbound_friend_hears_greeting_and_stranger_is_rejected(
    gateway: Gateway, fake: FakeTwilio
) -> None:
    """An allowlisted caller gets the greeting; a stranger gets <Reject> and no REST hangup."""
    gw = gateway
    fake.retry_webhooks = True
    friend = await fake.dial_in(FRIEND, FROM, gw.webhook_url)
    await wait_for(lambda: friend.heard == ["Hi friend, how can I help?"])
    stranger = await fake.dial_in("+15559990000", FROM, gw.webhook_url)
    await fake.wait_ended(stranger.sid)
    assert stranger.verbs == ["Reject"]
    replies = [body for url, params, _, body in fake.webhooks if params["CallSid"] == stranger.sid]
    assert len(replies) == 2 and "<Reject" in replies[0] and "<Reject" not in replies[1]
    assert fake.rest_for(stranger.sid) == []
    status = await gw.rpc("voicecall.status")
    inbound = [c for c in status["calls"] if c["direction"] == "inbound"]
    assert [c["from"] for c in inbound] == [FRIEND]


async def test_dtmf_before_and_after_connect(gateway: Gateway, fake: FakeTwilio) -> None:
    """Pre-connect digits play once on the first fetch; later digits go by REST T-DTMF."""
    gw = gateway
    result = await gw.rpc(
        "voicecall.initiate",
        to="+15550005555",
        message="Connected",
        mode="conversation",
        dtmfSequence="12w#",
    )
    sid = next(iter(fake.calls))
    call = fake.calls[sid]
    await wait_for(lambda: call.heard == ["Connected"])
    assert call.digits_played == ["12w#"]
    await gw.rpc("voicecall.dtmf", callId=result["callId"], digits="9p9")
    await wait_for(lambda: call.digits_played == ["12w#", "9w9"])
    update = dict(fake.rest_for(sid)[-1].form)["Twiml"]
    assert "flow=keepalive" in update
    await gw.rpc("voicecall.end", callId=result["callId"])
    assert dict(fake.rest_for(sid)[-1].form) == {"Status": "completed"}


async def test_notify_message_is_in_the_transcript(gateway: Gateway, fake: FakeTwilio) -> None:
    """A notify call's inline message appears once as a bot transcript entry."""
    gw = gateway
    result = await gw.rpc(
        "voicecall.initiate", to="+15550003333", message="Your parcel", mode="notify"
    )
    record = await gw.ended(result["callId"])
    assert [(t["speaker"], t["text"]) for t in record["transcript"]] == [("bot", "Your parcel")]
    assert "initialMessage" not in record["metadata"]


async def test_voicemail_leave_message_after_the_beep(start_gateway: Any, fake: FakeTwilio) -> None:
    """On a machine the message waits for the beep, is spoken once, and the call ends voicemail."""
    gw = await start_gateway({"voicemail": {"detection": "twilio"}})
    fake.amd_verdicts = ["machine_start", "machine_end_beep"]
    result = await gw.rpc(
        "voicecall.initiate", to="+15550006666", message="Call me back", mode="notify"
    )
    form = dict(fake.rest[0].form)
    assert form["MachineDetection"] == "DetectMessageEnd" and "Url" in form
    sid = next(iter(fake.calls))
    call = await fake.wait_ended(sid)
    assert call.timeline == ["amd:machine_start", "amd:machine_end_beep", "say:Call me back"]
    record = await gw.ended(result["callId"])
    assert record["endReason"] == "voicemail"
    assert record["metadata"]["answeredBy"] == "machine_end_beep"
    assert record["metadata"]["answeredByFirst"] == "machine_start"
    assert [(t["speaker"], t["text"]) for t in record["transcript"]] == [("bot", "Call me back")]


async def test_voicemail_hang_up_verdict_ends_at_once(start_gateway: Any, fake: FakeTwilio) -> None:
    """With onMachine hang-up a machine verdict hangs up unheard and ends the call voicemail."""
    gw = await start_gateway({"voicemail": {"detection": "twilio", "onMachine": "hang-up"}})
    fake.amd_verdicts = ["machine_start"]
    result = await gw.rpc(
        "voicecall.initiate", to="+15550007777", message="Hi", mode="conversation"
    )
    assert dict(fake.rest[0].form)["MachineDetection"] == "Enable"
    sid = next(iter(fake.calls))
    call = await fake.wait_ended(sid)
    assert call.heard == []
    record = await gw.ended(result["callId"])
    assert record["endReason"] == "voicemail"
    assert record["metadata"]["answeredBy"] == "machine_start"
    # the verdict's reply comes after the gateway's hangup request has been answered
    await wait_for(lambda: any("type=amd" in url for url, *_ in fake.webhooks))
    assert dict(fake.rest_for(sid)[-1].form) == {"Status": "completed"}


async def test_voicemail_human_verdict_proceeds(start_gateway: Any, fake: FakeTwilio) -> None:
    """A human verdict releases the held opening and the conversation goes on."""
    gw = await start_gateway({"voicemail": {"detection": "twilio"}})
    fake.amd_verdicts = ["human"]
    result = await gw.rpc(
        "voicecall.initiate", to="+15550008888", message="Hello human", mode="conversation"
    )
    sid = next(iter(fake.calls))
    call = fake.calls[sid]
    await wait_for(lambda: call.heard == ["Hello human"])
    assert call.timeline == ["amd:human", "say:Hello human"]
    assert "endedAt" not in await gw.call(result["callId"])
    await gw.rpc("voicecall.end", callId=result["callId"])
    record = await gw.ended(result["callId"])
    assert record["metadata"]["answeredBy"] == "human"


async def test_inbound_recording_starts_once_and_lands_in_metadata(
    start_gateway: Any, fake: FakeTwilio
) -> None:
    """An answered inbound call is recorded once; the recording callback lands in metadata."""
    gw = await start_gateway({"recording": {"enabled": True, "channels": "dual"}})
    friend = await fake.dial_in(FRIEND, FROM, gw.webhook_url)
    await wait_for(lambda: friend.heard == ["Hi friend, how can I help?"])
    await wait_for(lambda: len(friend.recording_callbacks) == 1)
    starts = [r for r in fake.rest_for(friend.sid) if r.path.endswith("/Recordings.json")]
    assert len(starts) == 1
    form = dict(starts[0].form)
    assert (
        form["RecordingChannels"] == "dual" and "type=recording" in form["RecordingStatusCallback"]
    )
    await fake.hang_up(friend.sid)
    status = await gw.rpc("voicecall.status")
    call_id = next(c["callId"] for c in status["calls"] if c["direction"] == "inbound")
    sid = friend.recording_callbacks[0][0]

    async with asyncio.timeout(20):
        while not (found := gw.last_record(call_id).get("metadata", {}).get("recordings")):
            await asyncio.sleep(0.05)
    assert found == [{"sid": sid, "url": found[0]["url"], "durationSec": 7, "status": "completed"}]
    assert found[0]["url"].endswith(f"/Recordings/{sid}")


async def test_outbound_recording_callback_after_the_call_is_kept(
    start_gateway: Any, fake: FakeTwilio
) -> None:
    """A recording reported after the call ended is still stored in the call's metadata."""
    gw = await start_gateway({"recording": {"enabled": True}})
    result = await gw.rpc("voicecall.initiate", to="+15550009999", message="Hi", mode="notify")
    assert dict(fake.rest[0].form)["Record"] == "true"
    await gw.ended(result["callId"])
    async with asyncio.timeout(20):
        while not gw.last_record(result["callId"])["metadata"].get("recordings"):
            await asyncio.sleep(0.05)
    [recording] = gw.last_record(result["callId"])["metadata"]["recordings"]
    assert recording["status"] == "completed"
