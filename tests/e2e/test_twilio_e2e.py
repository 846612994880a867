"""`voicecall serve` on provider twilio against the fake Twilio: the call flows of SPEC §3.2."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.twilio import FakeTwilio, wait_for

pytestmark = pytest.mark.e2e

ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "fake-auth-token"
FROM = "+15550001000"
FRIEND = "+15550002222"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """A `voicecall serve` child configured for the fake Twilio."""

    def __init__(self, home: Path, fake: FakeTwilio, extra: dict[str, Any] | None = None) -> None:
        self.home = home
        self.rpc_port = free_port()
        serve_port = free_port()
        self.webhook_url = f"http://127.0.0.1:{serve_port}/voice/webhook"
        config: dict[str, Any] = {
            "provider": "twilio",
            "fromNumber": FROM,
            "twilio": {"accountSid": ACCOUNT, "authToken": TOKEN, "apiBaseUrl": fake.base_url},
            "publicUrl": self.webhook_url,
            "webhookSecurity": {"allowPrivateWebhookUrl": True},
            "serve": {"port": serve_port},
            "rpc": {"port": self.rpc_port},
            "inboundPolicy": "allowlist",
            "allowFrom": [FRIEND],
            "inboundGreeting": "Hi friend, how can I help?",
            "maxConcurrentCalls": 4,
            **(extra or {}),
        }
        (home / "config.json5").write_text(json.dumps(config))
        env = {**os.environ, "VOICECALL_HOME": str(home)}
        env.pop("VOICECALL_CONFIG", None)
        self.log = open(home / "serve.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voicecall.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{self.rpc_port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError((self.home / "serve.log").read_text())

    async def rpc(self, session: aiohttp.ClientSession, method: str, **params: Any) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with session.post(f"http://127.0.0.1:{self.rpc_port}/rpc", json=body) as r:
            reply = await r.json()
        assert "result" in reply, reply
        return reply["result"]

    async def call(self, session: aiohttp.ClientSession, call_id: str) -> dict[str, Any]:
        result = await self.rpc(session, "voicecall.status", callId=call_id)
        call: dict[str, Any] = result["call"]
        return call

    async def ended(self, session: aiohttp.ClientSession, call_id: str) -> dict[str, Any]:
        """The call's last persisted record, once it has ended (in memory and on disk)."""
        async with asyncio.timeout(20):
            while not (await self.call(session, call_id)).get("endedAt"):
                await asyncio.sleep(0.05)
            # the gateway answers status from memory; the final snapshot reaches disk right after
            while not (record := self._last_record(call_id)).get("endedAt"):
                await asyncio.sleep(0.05)
        return record

    def _last_record(self, call_id: str) -> dict[str, Any]:
        raw = (self.home / "calls.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in raw if line.strip()]
        mine: list[dict[str, Any]] = [r for r in records if r["callId"] == call_id]
        return mine[-1] if mine else {}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    twilio = FakeTwilio(ACCOUNT, TOKEN)
    await twilio.start()
    yield twilio
    await twilio.close()


@pytest.fixture
async def gateway(
    tmp_path: Path, fake: FakeTwilio
) -> AsyncIterator[tuple[Gateway, aiohttp.ClientSession]]:
    gw = Gateway(tmp_path, fake)
    async with aiohttp.ClientSession() as session:
        try:
            await gw.ready(session)
            yield gw, session
        finally:
            gw.stop()


@pytest.fixture
async def start_gateway(tmp_path: Path, fake: FakeTwilio) -> AsyncIterator[Any]:
    """Start a gateway with extra top-level config keys (one per test)."""
    started: list[Gateway] = []
    async with aiohttp.ClientSession() as session:

        async def start(extra: dict[str, Any]) -> tuple[Gateway, aiohttp.ClientSession]:
            gw = Gateway(tmp_path, fake, extra)
            started.append(gw)
            await gw.ready(session)
            return gw, session

        try:
            yield start
        finally:
            for gw in started:
                gw.stop()


async def test_outbound_notify_sends_inline_twiml(
    gateway: tuple[Gateway, aiohttp.ClientSession], fake: FakeTwilio
) -> None:
    """A notify call carries its <Say> inline in the create request and never updates TwiML."""
    gw, session = gateway
    fake.retry_webhooks = True
    result = await gw.rpc(
        session, "voicecall.initiate", to="+15550003333", message="Your order & more", mode="notify"
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
    record = await gw.ended(session, result["callId"])
    assert record["endReason"] == "completed"
    assert fake.rest_for(sid) == []  # no second speech update, no hangup
    assert all(status == 200 for _, _, status, _ in fake.webhooks)


async def test_two_turn_conversation_with_turn_tokens(
    gateway: tuple[Gateway, aiohttp.ClientSession], fake: FakeTwilio
) -> None:
    """The first voice fetch speaks the opening; each continue gets the callee's answer."""
    gw, session = gateway
    fake.status_out_of_order = True
    fake.answer_lines = ["Tuesday works", "Around noon"]
    result = await gw.rpc(
        session, "voicecall.initiate", to="+15550004444", message="Hello there", mode="conversation"
    )
    call_id = result["callId"]
    sid = next(iter(fake.calls))
    await wait_for(lambda: fake.calls[sid].heard == ["Hello there"])
    first = await gw.rpc(session, "voicecall.continue", callId=call_id, message="Which day?")
    second = await gw.rpc(session, "voicecall.continue", callId=call_id, message="What time?")
    assert (first["transcript"], second["transcript"]) == ("Tuesday works", "Around noon")
    updates = [dict(r.form)["Twiml"] for r in fake.rest_for(sid) if "Twiml" in dict(r.form)]
    assert len(updates) == 2 and all("turnToken=" in doc for doc in updates)
    assert "turnToken=" not in fake.calls[sid].documents[0]
    await fake.hang_up(sid)
    record = await gw.ended(session, call_id)
    assert record["endReason"] == "completed"
    texts = [(t["speaker"], t["text"]) for t in record["transcript"]]
    assert texts[:2] == [("bot", "Hello there"), ("bot", "Which day?")]
    assert ("user", "Around noon") in texts


async def test_inbound_friend_hears_greeting_and_stranger_is_rejected(
    gateway: tuple[Gateway, aiohttp.ClientSession], fake: FakeTwilio
) -> None:
    """An allowlisted caller gets the greeting; a stranger gets <Reject> and no REST hangup."""
    gw, session = gateway
    fake.retry_webhooks = True
    friend = await fake.dial_in(FRIEND, FROM, gw.webhook_url)
    await wait_for(lambda: friend.heard == ["Hi friend, how can I help?"])
    stranger = await fake.dial_in("+15559990000", FROM, gw.webhook_url)
    await fake.wait_ended(stranger.sid)
    assert stranger.verbs == ["Reject"]
    replies = [body for url, params, _, body in fake.webhooks if params["CallSid"] == stranger.sid]
    assert len(replies) == 2 and "<Reject" in replies[0] and "<Reject" not in replies[1]
    assert fake.rest_for(stranger.sid) == []
    status = await gw.rpc(session, "voicecall.status")
    inbound = [c for c in status["calls"] if c["direction"] == "inbound"]
    assert [c["from"] for c in inbound] == [FRIEND]


async def test_dtmf_before_and_after_connect(
    gateway: tuple[Gateway, aiohttp.ClientSession], fake: FakeTwilio
) -> None:
    """Pre-connect digits play once on the first fetch; later digits go by REST T-DTMF."""
    gw, session = gateway
    result = await gw.rpc(
        session,
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
    await gw.rpc(session, "voicecall.dtmf", callId=result["callId"], digits="9p9")
    await wait_for(lambda: call.digits_played == ["12w#", "9w9"])
    update = dict(fake.rest_for(sid)[-1].form)["Twiml"]
    assert "flow=keepalive" in update
    await gw.rpc(session, "voicecall.end", callId=result["callId"])
    assert dict(fake.rest_for(sid)[-1].form) == {"Status": "completed"}


async def test_notify_message_is_in_the_transcript(
    gateway: tuple[Gateway, aiohttp.ClientSession], fake: FakeTwilio
) -> None:
    """A notify call's inline message appears once as a bot transcript entry."""
    gw, session = gateway
    result = await gw.rpc(
        session, "voicecall.initiate", to="+15550003333", message="Your parcel", mode="notify"
    )
    record = await gw.ended(session, result["callId"])
    assert [(t["speaker"], t["text"]) for t in record["transcript"]] == [("bot", "Your parcel")]
    assert "initialMessage" not in record["metadata"]


async def test_voicemail_leave_message_after_the_beep(start_gateway: Any, fake: FakeTwilio) -> None:
    """On a machine the message waits for the beep, is spoken once, and the call ends voicemail."""
    gw, session = await start_gateway({"voicemail": {"detection": "twilio"}})
    fake.amd_verdicts = ["machine_start", "machine_end_beep"]
    result = await gw.rpc(
        session, "voicecall.initiate", to="+15550006666", message="Call me back", mode="notify"
    )
    form = dict(fake.rest[0].form)
    assert form["MachineDetection"] == "DetectMessageEnd" and "Url" in form
    sid = next(iter(fake.calls))
    call = await fake.wait_ended(sid)
    assert call.timeline == ["amd:machine_start", "amd:machine_end_beep", "say:Call me back"]
    record = await gw.ended(session, result["callId"])
    assert record["endReason"] == "voicemail"
    assert record["metadata"]["answeredBy"] == "machine_end_beep"
    assert record["metadata"]["answeredByFirst"] == "machine_start"
    assert [(t["speaker"], t["text"]) for t in record["transcript"]] == [("bot", "Call me back")]


async def test_voicemail_hang_up_verdict_ends_at_once(start_gateway: Any, fake: FakeTwilio) -> None:
    """With onMachine hang-up a machine verdict hangs up unheard and ends the call voicemail."""
    gw, session = await start_gateway(
        {"voicemail": {"detection": "twilio", "onMachine": "hang-up"}}
    )
    fake.amd_verdicts = ["machine_start"]
    result = await gw.rpc(
        session, "voicecall.initiate", to="+15550007777", message="Hi", mode="conversation"
    )
    assert dict(fake.rest[0].form)["MachineDetection"] == "Enable"
    sid = next(iter(fake.calls))
    call = await fake.wait_ended(sid)
    assert call.heard == []
    record = await gw.ended(session, result["callId"])
    assert record["endReason"] == "voicemail"
    assert record["metadata"]["answeredBy"] == "machine_start"
    # the verdict's reply comes after the gateway's hangup request has been answered
    await wait_for(lambda: any("type=amd" in url for url, *_ in fake.webhooks))
    assert dict(fake.rest_for(sid)[-1].form) == {"Status": "completed"}


async def test_voicemail_human_verdict_proceeds(start_gateway: Any, fake: FakeTwilio) -> None:
    """A human verdict releases the held opening and the conversation goes on."""
    gw, session = await start_gateway({"voicemail": {"detection": "twilio"}})
    fake.amd_verdicts = ["human"]
    result = await gw.rpc(
        session, "voicecall.initiate", to="+15550008888", message="Hello human", mode="conversation"
    )
    sid = next(iter(fake.calls))
    call = fake.calls[sid]
    await wait_for(lambda: call.heard == ["Hello human"])
    assert call.timeline == ["amd:human", "say:Hello human"]
    assert "endedAt" not in await gw.call(session, result["callId"])
    await gw.rpc(session, "voicecall.end", callId=result["callId"])
    record = await gw.ended(session, result["callId"])
    assert record["metadata"]["answeredBy"] == "human"


async def test_inbound_recording_starts_once_and_lands_in_metadata(
    start_gateway: Any, fake: FakeTwilio
) -> None:
    """An answered inbound call is recorded once; the recording callback lands in metadata."""
    gw, session = await start_gateway({"recording": {"enabled": True, "channels": "dual"}})
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
    status = await gw.rpc(session, "voicecall.status")
    call_id = next(c["callId"] for c in status["calls"] if c["direction"] == "inbound")
    sid = friend.recording_callbacks[0][0]

    async with asyncio.timeout(20):
        while not (found := gw._last_record(call_id).get("metadata", {}).get("recordings")):
            await asyncio.sleep(0.05)
    assert found == [{"sid": sid, "url": found[0]["url"], "durationSec": 7, "status": "completed"}]
    assert found[0]["url"].endswith(f"/Recordings/{sid}")


async def test_outbound_recording_callback_after_the_call_is_kept(
    start_gateway: Any, fake: FakeTwilio
) -> None:
    """A recording reported after the call ended is still stored in the call's metadata."""
    gw, session = await start_gateway({"recording": {"enabled": True}})
    result = await gw.rpc(
        session, "voicecall.initiate", to="+15550009999", message="Hi", mode="notify"
    )
    assert dict(fake.rest[0].form)["Record"] == "true"
    await gw.ended(session, result["callId"])
    async with asyncio.timeout(20):
        while not gw._last_record(result["callId"])["metadata"].get("recordings"):
            await asyncio.sleep(0.05)
    [recording] = gw._last_record(result["callId"])["metadata"]["recordings"]
    assert recording["status"] == "completed"
