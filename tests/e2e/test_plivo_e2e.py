"""`voicecall serve` on provider plivo against the fake Plivo: the call flows of SPEC §3.4."""

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
from tests.fakes.plivo import FakeCall, FakePlivo

pytestmark = pytest.mark.e2e

FROM = "+15550001000"
FRIEND = "+15550002222"
STRANGER = "+15550009999"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A `voicecall serve` child configured for the fake Plivo."""

    def __init__(self, home: Path, fake: FakePlivo) -> None:
        self.home = home
        self.rpc_port = free_port()
        serve_port = free_port()
        self.webhook_url = f"http://127.0.0.1:{serve_port}/voice/webhook"
        config: dict[str, Any] = {
            "provider": "plivo",
            "fromNumber": FROM,
            "plivo": {
                "authId": fake.auth_id,
                "authToken": fake.auth_token,
                "apiBaseUrl": fake.api_base_url,
            },
            "publicUrl": self.webhook_url,
            "webhookSecurity": {"allowPrivateWebhookUrl": True},
            "serve": {"port": serve_port},
            "rpc": {"port": self.rpc_port},
            "inboundPolicy": "allowlist",
            "allowFrom": [FRIEND],
            "inboundGreeting": "Hi friend, how can I help?",
            "maxConcurrentCalls": 4,
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

    async def status(self, session: aiohttp.ClientSession, call_id: str) -> dict[str, Any]:
        result = await self.rpc(session, "voicecall.status", callId=call_id)
        call: dict[str, Any] = result["call"]
        return call

    async def until_answered(self, session: aiohttp.ClientSession, call_id: str) -> None:
        async with asyncio.timeout(20):
            while not (await self.status(session, call_id)).get("answeredAt"):
                await asyncio.sleep(0.05)

    def records(self) -> list[dict[str, Any]]:
        path = self.home / "calls.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    async def ended(self, session: aiohttp.ClientSession, call_id: str) -> dict[str, Any]:
        """The call's last persisted record, once it has ended (in memory and on disk)."""
        async with asyncio.timeout(20):
            while not (await self.status(session, call_id)).get("endedAt"):
                await asyncio.sleep(0.05)
            # the gateway answers status from memory; the final snapshot reaches disk right after
            while True:
                mine = [r for r in self.records() if r["callId"] == call_id]
                if mine and mine[-1].get("endedAt"):
                    return mine[-1]
                await asyncio.sleep(0.05)

    async def inbound_record(self, call: FakeCall) -> dict[str, Any]:
        """The last persisted record of an inbound call, found by its CallUUID."""
        async with asyncio.timeout(20):
            while True:
                mine = [r for r in self.records() if r.get("providerCallId") == call.call_uuid]
                if mine and mine[-1].get("endedAt"):
                    return mine[-1]
                await asyncio.sleep(0.05)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=30)
        self.log.close()
        return code


@pytest.fixture
async def fake() -> AsyncIterator[FakePlivo]:
    async with FakePlivo(duplicate_every=2, late_every=3) as plivo:
        yield plivo


@pytest.fixture
async def served(
    tmp_path: Path, fake: FakePlivo
) -> AsyncIterator[tuple[Served, aiohttp.ClientSession]]:
    gateway = Served(tmp_path, fake)
    async with aiohttp.ClientSession() as session:
        try:
            await gateway.ready(session)
            yield gateway, session
        finally:
            await fake.aclose_calls()
            gateway.stop()


def fake_call(fake: FakePlivo, record: dict[str, Any]) -> FakeCall:
    return fake.calls[record["providerCallId"]]


async def test_outbound_notify_speaks_and_hangs_up(
    served: tuple[Served, aiohttp.ClientSession], fake: FakePlivo
) -> None:
    """A notify call's answer XML speaks the message and hangs up; no transfer is needed."""
    gateway, session = served
    result = await gateway.rpc(
        session, "voicecall.initiate", to="+15550003333", message="Your order & more", mode="notify"
    )
    record = await gateway.ended(session, result["callId"])
    call = fake_call(fake, record)
    assert call.heard == ["Your order & more"]
    assert call.documents[0] == (
        '<Response><Speak language="en-US">Your order &amp; more</Speak><Hangup /></Response>'
    )
    assert record["endReason"] == "completed"
    assert [m for m, _, _ in fake.requests] == ["POST"]  # create only


async def test_two_turn_conversation(
    served: tuple[Served, aiohttp.ClientSession], fake: FakePlivo
) -> None:
    """The opening line and two agent replies are heard; both caller answers are transcribed."""
    gateway, session = served
    result = await gateway.rpc(
        session,
        "voicecall.initiate",
        to="+15550004444",
        message="Can we meet at six?",
        mode="conversation",
    )
    record = await gateway.ended(session, result["callId"])
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


async def test_inbound_allowlisted_caller_is_greeted(
    served: tuple[Served, aiohttp.ClientSession], fake: FakePlivo
) -> None:
    """A caller on the allowlist hears the greeting and gets an answer to their question."""
    gateway, _ = served
    call = fake.dial_in(
        from_number=FRIEND,
        to_number=FROM,
        answer_url=gateway.webhook_url,
        hangup_url=gateway.webhook_url,
        script=["What time do you open?"],
    )
    await fake.wait_ended(call)
    record = await gateway.inbound_record(call)
    assert call.heard[0] == "Hi friend, how can I help?"
    assert len(call.heard) == 2 and call.hangup_reason is None
    assert (record["direction"], record["from"]) == ("inbound", FRIEND)
    assert [e["text"] for e in record["transcript"] if e["speaker"] == "user"] == [
        "What time do you open?"
    ]


async def test_inbound_stranger_rejected_in_band_without_rest_hangup(
    served: tuple[Served, aiohttp.ClientSession], fake: FakePlivo
) -> None:
    """A stranger is refused by the answer XML itself; a retried fetch never hangs up via REST."""
    gateway, _ = served
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
    record = await gateway.inbound_record(call)
    assert record["endReason"] == "hangup-bot"
    assert record["metadata"]["rejectionReason"] == "inbound-policy"
    assert [m for m, _, _ in fake.requests if m == "DELETE"] == [] and call.rest_hangups == 0


async def test_dtmf_is_sent_with_the_dtmf_api(
    served: tuple[Served, aiohttp.ClientSession], fake: FakePlivo
) -> None:
    """`voicecall.dtmf` plays the digits on the live call; pre-connect digits ride on create."""
    gateway, session = served
    fake.script = ["Sure, go ahead."]
    result = await gateway.rpc(
        session,
        "voicecall.initiate",
        to="+15550005555",
        message="Connecting you to the extension.",
        mode="conversation",
        dtmfSequence="12w#",
    )
    call_id = result["callId"]
    await gateway.until_answered(session, call_id)
    assert fake.requests[0][2]["send_digits"] == "12w#"
    assert await gateway.rpc(session, "voicecall.dtmf", callId=call_id, digits="345") == {
        "success": True
    }
    call = fake_call(fake, await gateway.status(session, call_id))
    assert call.dtmf_received == ["345"]
    assert await gateway.rpc(session, "voicecall.end", callId=call_id) == {"success": True}
    record = await gateway.ended(session, call_id)
    assert record["endReason"] == "hangup-bot"
    assert [p for m, p, _ in fake.requests if m == "DELETE"] == [
        f"/v1/Account/{fake.auth_id}/Call/{call.call_uuid}/"
    ]


async def test_callee_hangs_up(
    served: tuple[Served, aiohttp.ClientSession], fake: FakePlivo
) -> None:
    """When the callee hangs up mid-call the call ends from Plivo's hangup callback alone."""
    gateway, session = served
    fake.script = ["Let me think about it."]
    result = await gateway.rpc(
        session, "voicecall.initiate", to="+15550006666", message="Hello!", mode="conversation"
    )
    call_id = result["callId"]
    await gateway.until_answered(session, call_id)
    call = fake_call(fake, await gateway.status(session, call_id))
    fake.callee_hangs_up(call)
    record = await gateway.ended(session, call_id)
    assert record["endReason"] == "completed"
    assert [m for m, _, _ in fake.requests if m == "DELETE"] == []
    assert gateway.stop() == 0
