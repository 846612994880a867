"""TelnyxCarrier against the fake Telnyx REST API: hangup, status, speak, errors, webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from tests.fakes.telnyx import FakeTelnyx

from voicecall.calls.record import CallRecord
from voicecall.carriers import load_carrier_class
from voicecall.carriers.api import CarrierApiError
from voicecall.carriers.base import CarrierContext, WebhookRequest
from voicecall.carriers.telnyx import TelnyxCarrier
from voicecall.config import VoicecallConfig
from voicecall.errors import ConfigError

WEBHOOK = "https://gw.example.com/voice/webhook"


def _config(fake: FakeTelnyx, **telnyx: Any) -> VoicecallConfig:
    return VoicecallConfig.model_validate(
        {
            "provider": "telnyx",
            "fromNumber": "+15550001111",
            "publicUrl": WEBHOOK,
            "ringTimeoutMs": 20_000,
            "telnyx": {
                "apiKey": fake.api_key,
                "connectionId": fake.connection_id,
                "publicKey": fake.public_key_b64,
                "apiBaseUrl": fake.base_url,
                **telnyx,
            },
        }
    )


class Control:
    """A CallControl that records events and knows no calls."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def handle_events(
        self, events: list[dict[str, Any]], *, in_band_rejection: bool = False
    ) -> None:
        self.events.extend(events)

    def call_view(self, call_id: str) -> None:
        return None

    async def claim_initial_message(self, call_id: str) -> str | None:
        return None

    def get_record(self, call_id: str) -> CallRecord | None:
        return None

    def find_by_provider_id(self, provider_call_id: str) -> CallRecord | None:
        return None


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelnyx]:
    telnyx = FakeTelnyx(answer_delay_s=0.01)
    await telnyx.start()
    yield telnyx
    await telnyx.close()


@pytest.fixture
async def carrier(fake: FakeTelnyx) -> AsyncIterator[TelnyxCarrier]:
    async with aiohttp.ClientSession() as session:
        made = TelnyxCarrier(_config(fake), speak_fallback_s=30)
        made.attach(CarrierContext(http_session=session, webhook_url=WEBHOOK))
        await made.start()
        yield made
        await made.aclose()


async def _answered_call(fake: FakeTelnyx, carrier: TelnyxCarrier) -> str:
    fake.connection_webhook_url = "http://127.0.0.1:9/unused"  # deliveries go nowhere
    ccid = await carrier.initiate_call(
        call_id="c-1",
        from_number="+15550001111",
        to_number="+15550002222",
        mode="conversation",
        message=None,
        dtmf_sequence=None,
    )
    await fake.wait_for(lambda: fake.calls[ccid].state == "answered")
    return ccid


def test_registered_and_declares_its_webhook_headers() -> None:
    """The registry loads TelnyxCarrier; the pre-auth gate needs both Telnyx headers."""
    cls = load_carrier_class("telnyx")
    assert cls is TelnyxCarrier
    assert cls.webhook_signature_headers == (("telnyx-signature-ed25519", "telnyx-timestamp"),)
    assert cls.supports_pre_connect_dtmf


async def test_bad_public_key_is_a_config_error(fake: FakeTelnyx) -> None:
    """A malformed telnyx.publicKey stops the carrier from being built."""
    with pytest.raises(ConfigError, match=r"telnyx\.publicKey"):
        TelnyxCarrier(_config(fake, publicKey="nope"))


async def test_dial_uses_the_attached_webhook_url(fake: FakeTelnyx, carrier: TelnyxCarrier) -> None:
    """Dial sends the gateway's webhook URL and the ring timeout, and returns the call id."""
    ccid = await _answered_call(fake, carrier)
    dial = fake.rest[0]
    assert (dial.path, dial.status) == ("/v2/calls", 200)
    assert dial.body["webhook_url"] == WEBHOOK and dial.body["timeout_secs"] == 20
    assert ccid in fake.calls


async def test_hangup_of_a_gone_call_succeeds(fake: FakeTelnyx, carrier: TelnyxCarrier) -> None:
    """Hanging up an unknown (404) or already ended (90018) call is not an error."""
    ccid = await _answered_call(fake, carrier)
    await carrier.hangup_call(ccid)
    assert not fake.calls[ccid].alive
    await carrier.hangup_call(ccid)  # 422 "Call has already ended"
    await carrier.hangup_call("v3:unknown")  # 404
    assert [r.status for r in fake.rest if r.action == "hangup"] == [200, 422, 404]


async def test_status_polling(fake: FakeTelnyx, carrier: TelnyxCarrier) -> None:
    """GET /calls/{id}: is_alive true is live, false or 404 is terminal."""
    ccid = await _answered_call(fake, carrier)
    assert (await carrier.get_call_status(ccid)).terminal is False
    fake.callee_hangs_up(ccid)
    assert (await carrier.get_call_status(ccid)).terminal is True
    gone = await carrier.get_call_status("v3:unknown")
    assert (gone.status, gone.terminal) == ("not-found", True)


async def test_api_errors_name_the_carrier_status_and_message(fake: FakeTelnyx) -> None:
    """A refused request raises `telnyx API error <status>: <message>` with Telnyx's code."""
    async with aiohttp.ClientSession() as session:
        carrier = TelnyxCarrier(_config(fake, apiKey="wrong"))
        carrier.attach(CarrierContext(http_session=session, webhook_url=WEBHOOK))
        await carrier.start()
        with pytest.raises(CarrierApiError, match=r"^telnyx API error 401: ") as info:
            await carrier.send_dtmf("v3:x", "1")
        assert info.value.code == "10009"
        await carrier.aclose()


async def test_speak_returns_at_speak_ended(fake: FakeTelnyx, carrier: TelnyxCarrier) -> None:
    """play_tts returns once call.speak.ended is handled, not when the command is accepted."""
    ccid = await _answered_call(fake, carrier)
    control = Control()
    playback = asyncio.create_task(carrier.play_tts(ccid, "Hello"))
    await fake.wait_for(lambda: "speak" in fake.actions(ccid))
    await asyncio.sleep(0)
    assert not playback.done()
    body = {
        "data": {
            "event_type": "call.speak.ended",
            "id": "e-1",
            "payload": {"call_control_id": ccid, "status": "completed"},
        }
    }
    request = WebhookRequest("POST", WEBHOOK, {}, json.dumps(body).encode(), {}, None, None, 0)
    reply = await carrier.handle_webhook(request, carrier.verify_webhook(request), control)
    assert reply.status == 200 and reply.body == b"OK"
    await asyncio.wait_for(playback, 10)


async def test_speak_falls_back_without_speak_ended(
    fake: FakeTelnyx, carrier: TelnyxCarrier, caplog: pytest.LogCaptureFixture
) -> None:
    """Without call.speak.ended the playback counts as done after the bounded fallback."""
    ccid = await _answered_call(fake, carrier)
    async with aiohttp.ClientSession() as session:
        impatient = TelnyxCarrier(_config(fake), speak_fallback_s=0.05)
        impatient.attach(CarrierContext(http_session=session, webhook_url=WEBHOOK))
        await impatient.start()
        await asyncio.wait_for(impatient.play_tts(ccid, "Hello"), 10)
        await impatient.aclose()
    assert "no call.speak.ended" in caplog.text


async def test_unsigned_webhooks_are_refused(carrier: TelnyxCarrier) -> None:
    """A webhook without a valid signature does not verify."""
    request = WebhookRequest(
        "POST",
        WEBHOOK,
        {"telnyx-signature-ed25519": "AAAA", "telnyx-timestamp": "1"},
        b"{}",
        {},
        None,
        None,
        1000,
    )
    assert not carrier.verify_webhook(request).ok


async def test_malformed_verified_body_is_a_400_that_can_be_retried(
    carrier: TelnyxCarrier,
) -> None:
    """A body that is not a Telnyx event gets 400 and releases its replay reservation."""
    request = WebhookRequest("POST", WEBHOOK, {}, b"[1]", {}, None, None, 0)
    control = Control()
    reply = await carrier.handle_webhook(request, carrier.verify_webhook(request), control)
    assert (reply.status, reply.replayable, control.events) == (400, True, [])
