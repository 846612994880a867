"""PlivoCarrier in a real Gateway against the fake Plivo: REST, XML answers, signed callbacks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.plivo import FakeCall, FakePlivo

from voicecall.carriers.plivo import PlivoCarrier
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway

ALLOWED = "+15557770000"
STRANGER = "+15558889999"
OUR_NUMBER = "+15550001111"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(predicate: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` otherwise."""
    async with asyncio.timeout(timeout_s):
        while not (value := predicate()):
            await asyncio.sleep(0.01)
    return value


@dataclass
class Rig:
    """A gateway on the fake Plivo, with the webhook URL the fake calls back."""

    gateway: Gateway
    fake: FakePlivo
    webhook_url: str

    @property
    def runtime(self) -> Any:
        return self.gateway.runtime

    @property
    def carrier(self) -> PlivoCarrier:
        carrier: Any = self.gateway._carrier
        assert isinstance(carrier, PlivoCarrier)
        return carrier

    def record(self, call_id: str) -> Any:
        return self.runtime.get_record(call_id)

    async def ended(self, call_id: str) -> Any:
        return await until(
            lambda: (r := self.record(call_id)) is not None and r.ended_at_ms and r,
            f"call {call_id} to end",
        )

    def fake_call(self, call_id: str) -> FakeCall:
        record = self.record(call_id)
        for call in self.fake.calls.values():
            if record.provider_call_id in (call.call_uuid, call.request_uuid):
                return call
        raise AssertionError(f"no fake call for {call_id}")

    def rest(self, method: str, suffix: str = "") -> list[Any]:
        return [
            body for m, path, body in self.fake.requests if m == method and path.endswith(suffix)
        ]


def _config(fake: FakePlivo, store: Path, port: int, **extra: Any) -> VoicecallConfig:
    raw: dict[str, Any] = {
        "provider": "plivo",
        "fromNumber": OUR_NUMBER,
        "publicUrl": f"http://127.0.0.1:{port}/voice/webhook",
        "store": str(store),
        "inboundPolicy": "allowlist",
        "allowFrom": [ALLOWED],
        "inboundGreeting": "Welcome to the test line.",
        "serve": {"port": port},
        "rpc": {"port": 0},
        "ringTimeoutMs": 20500,
        "webhookSecurity": {"allowPrivateWebhookUrl": True},
        "plivo": {
            "authId": fake.auth_id,
            "authToken": fake.auth_token,
            "apiBaseUrl": fake.api_base_url,
        },
        **extra,
    }
    return VoicecallConfig.model_validate(raw)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with FakePlivo() as fake:
        port = _free_port()
        gateway = Gateway(_config(fake, tmp_path, port), control=False, env={})
        await gateway.start()
        assert gateway.unavailable is None, gateway.unavailable
        try:
            yield Rig(gateway, fake, f"http://127.0.0.1:{port}/voice/webhook")
        finally:
            await fake.aclose_calls()
            await gateway.stop()


async def test_notify_call_speaks_inline_and_hangs_up(rig: Rig) -> None:
    """A notify call answers with xml-notify, the callee hears it, and Plivo ends the call."""
    placed = await rig.runtime.initiate(
        to="+15550002222", message="Your table & more", mode="notify"
    )
    record = await rig.ended(placed["callId"])
    call = rig.fake_call(placed["callId"])
    assert call.heard == ["Your table & more"]
    assert call.documents[0] == (
        '<Response><Speak language="en-US">Your table &amp; more</Speak><Hangup /></Response>'
    )
    assert record.end_reason == "completed"
    assert record.provider_call_id == call.call_uuid  # upgraded from the request_uuid
    (create,) = rig.rest("POST", "/Call/")
    assert create == {
        "from": OUR_NUMBER,
        "to": "+15550002222",
        "answer_url": f"{rig.webhook_url}?provider=plivo&callId={record.call_id}&flow=answer",
        "answer_method": "POST",
        "hangup_url": f"{rig.webhook_url}?provider=plivo&callId={record.call_id}&flow=hangup",
        "hangup_method": "POST",
        "ring_timeout": 21,
    }
    assert len(rig.fake.requests) == 1  # no transfer, no REST hangup


async def test_conversation_speaks_and_listens_in_one_document_per_turn(rig: Rig) -> None:
    """Each bot line is one xml-speak-listen transfer; the caller's answers reach the transcript."""
    placed = await rig.runtime.initiate(
        to="+15550003333", message="Is six ok?", mode="conversation"
    )
    record = await rig.ended(placed["callId"])
    call = rig.fake_call(placed["callId"])
    bot = [e.text for e in record.transcript if e.speaker == "bot"]
    user = [e.text for e in record.transcript if e.speaker == "user"]
    assert user == ["Yes, that works for me.", "Thanks, goodbye."]
    assert [e.speaker for e in record.transcript] == ["bot", "user", "bot", "user", "bot"]
    assert call.heard == bot
    transfers = rig.rest("POST", f"/Call/{call.call_uuid}/")
    assert [t["aleg_url"].split("flow=")[1].split("&")[0] for t in transfers] == [
        "xml-speak-listen"
    ] * len(bot)
    assert record.end_reason == "completed"


async def test_inbound_allowlisted_caller_is_greeted_and_answered(rig: Rig) -> None:
    """An allowlisted caller hears the greeting, and their speech gets a reply."""
    call = rig.fake.dial_in(
        from_number=ALLOWED, to_number=OUR_NUMBER, answer_url=rig.webhook_url,
        hangup_url=rig.webhook_url, script=["What are your hours?"],
    )  # fmt: skip
    await rig.fake.wait_ended(call)
    record = await until(lambda: rig.runtime.find_by_provider_id(call.call_uuid), "record")
    record = await rig.ended(record.call_id)
    assert call.heard[0] == "Welcome to the test line."
    assert len(call.heard) == 2 and call.hangup_reason is None
    assert (record.direction, record.from_number) == ("inbound", ALLOWED)
    assert [e.text for e in record.transcript if e.speaker == "user"] == ["What are your hours?"]


async def test_inbound_stranger_is_rejected_in_band_once(rig: Rig) -> None:
    """A stranger gets <Hangup reason="rejected"/>; retries never cause a REST hangup."""
    call = rig.fake.dial_in(
        from_number=STRANGER, to_number=OUR_NUMBER, answer_url=rig.webhook_url,
        hangup_url=rig.webhook_url,
    )  # fmt: skip
    await rig.fake.wait_ended(call)
    assert call.documents == ['<Response><Hangup reason="rejected" /></Response>']
    assert call.hangup_reason == "rejected" and call.heard == []
    # Plivo retries the answer fetch as a fresh request: still refused in band.
    params = rig.fake.posted[0].params
    retried = await rig.fake.post(rig.webhook_url, params)
    assert retried is not None and retried.body == call.documents[0]
    record = rig.runtime.find_by_provider_id(call.call_uuid)
    assert record.end_reason == "hangup-bot"
    assert record.metadata["rejectionReason"] == "inbound-policy"
    await rig.runtime.wait_idle()
    assert rig.rest("DELETE") == [] and call.rest_hangups == 0


async def test_dtmf_mid_call_and_before_connect(rig: Rig) -> None:
    """Mid-call digits use the DTMF API; a pre-connect sequence rides on create as send_digits."""
    placed = await rig.runtime.initiate(
        to="+15550004444", message="Dialling the extension.", mode="conversation",
        dtmf_sequence="1234wP#",
    )  # fmt: skip
    call_id = placed["callId"]
    await until(lambda: rig.record(call_id).answered_at_ms, "answer")
    assert rig.rest("POST", "/Call/")[0]["send_digits"] == "1234wW#"
    assert await rig.runtime.send_dtmf(call_id, "9p#") == {"success": True}
    call = rig.fake_call(call_id)
    assert call.dtmf_received == ["9w#"]
    assert rig.rest("POST", "/DTMF/") == [{"digits": "9w#", "leg": "aleg"}]


async def test_callee_hangup_ends_the_call(rig: Rig) -> None:
    """When the callee hangs up, the hangup callback ends the call without a REST hangup."""
    rig.fake.script = ["Hold on."]
    placed = await rig.runtime.initiate(to="+15550005555", message="Hi there.", mode="conversation")
    call_id = placed["callId"]
    await until(lambda: rig.record(call_id).answered_at_ms, "answer")
    rig.fake.callee_hangs_up(rig.fake_call(call_id))
    record = await rig.ended(call_id)
    assert record.end_reason == "completed"
    assert rig.rest("DELETE") == []


async def test_bot_hangup_uses_the_call_uuid(rig: Rig) -> None:
    """Ending a connected call deletes /Call/{CallUUID}/, not the create request's id."""
    rig.fake.script = ["One moment."]
    placed = await rig.runtime.initiate(to="+15550006666", message="Hello.", mode="conversation")
    call_id = placed["callId"]
    await until(lambda: rig.record(call_id).answered_at_ms, "answer")
    call = rig.fake_call(call_id)
    assert await rig.runtime.end_call(call_id) == {"success": True}
    assert rig.record(call_id).end_reason == "hangup-bot"
    await rig.fake.wait_ended(call)
    assert [(m, p) for m, p, _ in rig.fake.requests if m == "DELETE"] == [
        ("DELETE", f"/v1/Account/{rig.fake.auth_id}/Call/{call.call_uuid}/")
    ]


async def test_hangup_before_answer_cancels_the_request(rig: Rig) -> None:
    """Ending a call Plivo is still placing deletes /Call/{id}/ (404), then /Request/{id}/."""
    rig.fake.ring_ms = 60_000
    placed = await rig.runtime.initiate(to="+15550007777", message="Hello.", mode="conversation")
    call_id = placed["callId"]
    request_uuid = rig.record(call_id).provider_call_id
    assert await rig.runtime.end_call(call_id) == {"success": True}
    deletes = [p for m, p, _ in rig.fake.requests if m == "DELETE"]
    base = f"/v1/Account/{rig.fake.auth_id}"
    assert deletes == [f"{base}/Call/{request_uuid}/", f"{base}/Request/{request_uuid}/"]
    assert rig.fake.call_for_request(request_uuid).status == "cancel"  # type: ignore[union-attr]


async def test_call_status_polls_the_call(rig: Rig) -> None:
    """Status is live while Plivo reports in-progress and terminal once the call completed."""
    rig.fake.script = ["Wait."]
    placed = await rig.runtime.initiate(to="+15550008888", message="Hi.", mode="conversation")
    call_id = placed["callId"]
    await until(lambda: rig.record(call_id).answered_at_ms, "answer")
    call = rig.fake_call(call_id)
    live = await rig.carrier.get_call_status(call.call_uuid)
    assert (live.status, live.terminal) == ("in-progress", False)
    rig.fake.callee_hangs_up(call)
    await rig.fake.wait_ended(call)
    over = await rig.carrier.get_call_status(call.call_uuid)
    assert (over.status, over.terminal) == ("completed", True)
    gone = await rig.carrier.get_call_status("no-such-call")
    assert (gone.status, gone.terminal) == ("not-found", True)


async def test_forged_callbacks_are_refused(rig: Rig) -> None:
    """A callback signed with another token, or unsigned, is 401 and changes nothing."""
    params = {"CallUUID": "forged", "Direction": "inbound", "From": "15557770000",
              "To": "15550001111", "CallStatus": "ringing", "Event": "StartApp"}  # fmt: skip
    headers = rig.fake.signed_headers(rig.webhook_url, params, "42")
    headers["X-Plivo-Signature-V3"] = "AAAA" + headers["X-Plivo-Signature-V3"][4:]
    headers["X-Plivo-Signature-V2"] = "AAAA" + headers["X-Plivo-Signature-V2"][4:]
    async with aiohttp.ClientSession() as http:
        async with http.post(rig.webhook_url, data=params, headers=headers) as forged:
            assert forged.status == 401
        async with http.post(rig.webhook_url, data=params) as unsigned:
            assert unsigned.status == 401
    assert rig.runtime.find_by_provider_id("forged") is None


async def test_v2_only_callbacks_are_accepted(rig: Rig) -> None:
    """A callback carrying only the legacy V2 signature is verified and processed."""
    params = {"CallUUID": "v2-only", "Direction": "inbound", "From": "15557770000",
              "To": "15550001111", "CallStatus": "ringing", "Event": "StartApp"}  # fmt: skip
    headers = rig.fake.signed_headers(rig.webhook_url, params, "77")
    del headers["X-Plivo-Signature-V3"], headers["X-Plivo-Signature-V3-Nonce"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(rig.webhook_url, data=params, headers=headers) as reply,
    ):
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/xml")
        assert await reply.text() == '<Response><Wait length="300" /></Response>'
    assert rig.runtime.find_by_provider_id("v2-only") is not None


async def test_refetched_document_is_the_same_one(rig: Rig) -> None:
    """Plivo fetching a transfer URL again gets the document that transfer carried."""
    rig.fake.reply_ms = 60_000  # the callee stays silent: the call sits in GetInput
    placed = await rig.runtime.initiate(to="+15550009999", message="First.", mode="conversation")
    call_id = placed["callId"]
    call = await until(lambda: rig.record(call_id).answered_at_ms and rig.fake_call(call_id), "a")

    def document(text: str) -> str | None:
        return next((d for d in call.documents if text in d), None)

    first = await until(lambda: document("First."), "the first document")
    (transfer,) = rig.rest("POST", f"/Call/{call.call_uuid}/")
    assert transfer["aleg_url"].endswith("&seq=1")
    assert await rig.runtime.speak(call_id, "Second.") == {"success": True}
    await until(lambda: document("Second."), "the second document")
    again = await rig.fake.post(transfer["aleg_url"], rig.fake.posted[-1].params)
    assert again is not None and again.body == first


async def test_opt_in_recording_lands_in_the_record(tmp_path: Path) -> None:
    """With recording.enabled the answered call is recorded and the recording callback stored."""
    async with FakePlivo(script=["Yes."]) as fake:
        port = _free_port()
        config = _config(fake, tmp_path, port, recording={"enabled": True})
        gateway = Gateway(config, control=False, env={})
        await gateway.start()
        rig = Rig(gateway, fake, f"http://127.0.0.1:{port}/voice/webhook")
        try:
            placed = await rig.runtime.initiate(to="+15550001234", message="Hi.", mode="notify")
            call_id = placed["callId"]
            record = await until(
                lambda: (r := rig.record(call_id)) and r.metadata.get("recordings"), "recording"
            )
            call = rig.fake_call(call_id)
            assert record == [
                {
                    "sid": f"rec-{call.call_uuid}",
                    "url": f"https://media.plivo.example/rec-{call.call_uuid}.mp3",
                    "durationSec": 3.0,
                }
            ]
            assert rig.rest("POST", "/Record/") == [
                {
                    "file_format": "mp3",
                    "callback_url": f"{rig.webhook_url}?provider=plivo&flow=recording"
                    f"&callId={call_id}",
                    "callback_method": "POST",
                }
            ]
        finally:
            await fake.aclose_calls()
            await gateway.stop()
