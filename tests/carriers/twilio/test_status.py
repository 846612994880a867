"""Twilio ``GET /Calls/{sid}.json`` (SPEC §3.1) and what restart recovery does with it (§2.9)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from tests.fakes.twilio import FakeCall, FakeTwilio

from voicecall.calls import commands as cmd
from voicecall.calls.manager import CallManager
from voicecall.carriers.api import CarrierApiError
from voicecall.carriers.base import CarrierContext
from voicecall.carriers.twilio.carrier import TwilioCarrier
from voicecall.config import VoicecallConfig

ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "fake-auth-token"
WEBHOOK = "https://gw.example.com/voice/webhook"
T0 = 1_700_000_000_000


def _config(base_url: str, **overrides: object) -> VoicecallConfig:
    return VoicecallConfig.model_validate(
        {
            "provider": "twilio",
            "fromNumber": "+15550001000",
            "publicUrl": WEBHOOK,
            "twilio": {"accountSid": ACCOUNT, "authToken": TOKEN, "apiBaseUrl": base_url},
            **overrides,
        }
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    twilio = FakeTwilio(ACCOUNT, TOKEN)
    await twilio.start()
    yield twilio
    await twilio.close()


async def _carrier(session: aiohttp.ClientSession, base_url: str) -> TwilioCarrier:
    carrier = TwilioCarrier(_config(base_url))
    carrier.attach(CarrierContext(http_session=session, webhook_url=WEBHOOK))
    await carrier.start()
    return carrier


def _call_in(fake: FakeTwilio, status: str) -> str:
    """A call the fake knows, frozen in ``status`` (no simulator runs it)."""
    sid = f"CA{status.replace('-', '')}{'0' * 20}"
    fake.calls[sid] = FakeCall(
        sid=sid, direction="outbound-api", from_="+1", to="+2", status=status
    )
    return sid


@pytest.mark.parametrize("status", ["completed", "failed", "busy", "no-answer", "canceled"])
async def test_ended_statuses_are_terminal(fake: FakeTwilio, status: str) -> None:
    """Every Twilio end status reads back as a terminal call status of the same name."""
    async with aiohttp.ClientSession() as session:
        carrier = await _carrier(session, fake.base_url)
        result = await carrier.get_call_status(_call_in(fake, status))
        await carrier.aclose()
    assert (result.status, result.terminal) == (status, True)
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake.rest] == [
        ("GET", next(iter(fake.calls)) + ".json")
    ]


@pytest.mark.parametrize("status", ["queued", "ringing", "in-progress"])
async def test_live_statuses_are_not_terminal(fake: FakeTwilio, status: str) -> None:
    """A queued, ringing or in-progress call reads back as still alive."""
    async with aiohttp.ClientSession() as session:
        carrier = await _carrier(session, fake.base_url)
        result = await carrier.get_call_status(_call_in(fake, status))
        await carrier.aclose()
    assert (result.status, result.terminal) == (status, False)


async def test_unknown_sid_is_terminal_not_found(fake: FakeTwilio) -> None:
    """A 404 from Twilio means the call is gone: terminal ``not-found``."""
    async with aiohttp.ClientSession() as session:
        carrier = await _carrier(session, fake.base_url)
        result = await carrier.get_call_status("CA" + "f" * 32)
        await carrier.aclose()
    assert (result.status, result.terminal) == ("not-found", True)


async def test_server_error_after_retries_is_an_error_not_an_end() -> None:
    """A persistent 500 is retried, then raised as a Twilio API error, never read as 'ended'."""
    fetches: list[str] = []

    async def broken(request: web.Request) -> web.Response:
        fetches.append(request.method)
        body = {"code": 20500, "message": "Internal Server Error", "status": 500}
        return web.json_response(body, status=500, headers={"Retry-After": "0"})

    app = web.Application()
    app.router.add_get("/2010-04-01/Accounts/{account}/Calls/{sid}.json", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            carrier = await _carrier(session, f"http://127.0.0.1:{port}")
            with pytest.raises(CarrierApiError) as caught:
                await carrier.get_call_status("CA" + "1" * 32)
            await carrier.aclose()
    finally:
        await runner.cleanup()
    assert fetches == ["GET", "GET", "GET"]
    assert str(caught.value) == "twilio API error 500: Internal Server Error"
    assert not caught.value.not_found


def test_unknown_status_on_restore_keeps_the_call_and_resumes_its_timer() -> None:
    """When the restart status check fails, the call stays live with its max-duration timer."""
    config = _config("http://127.0.0.1:9", maxDurationSeconds=300)
    manager = CallManager(config, supports_pre_connect_dtmf=True, new_id=lambda: "op")
    snapshot = {
        "callId": "c1", "provider": "twilio", "direction": "outbound", "state": "listening",
        "from": "+15550001000", "to": "+15550002000", "startedAt": T0 - 2000,
        "answeredAt": T0 - 1000, "providerCallId": "CA" + "1" * 32, "mode": "conversation",
    }  # fmt: skip
    out = manager.restore([snapshot], now_ms=T0)
    (check,) = [c for c in out if isinstance(c, cmd.CheckCallStatus)]
    resumed = manager.carrier_result(
        check.op_id, now_ms=T0, error="twilio API error 500: Internal Server Error"
    )
    record = manager.get_record("c1")
    assert record is not None and record.ended_at_ms is None and record.end_reason is None
    assert manager.active_call_count == 1
    timers = [c for c in resumed if isinstance(c, cmd.StartTimer)]
    assert [t.due_ms for t in timers] == [T0 - 1000 + 300_000]
