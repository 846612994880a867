"""SIGKILL `voicecall serve` mid-call on the Twilio, Telnyx and Plivo fakes, then restart (§2.9)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.e2e.harness import Gateway, until
from tests.fakes.plivo import FakeCall as PlivoCall
from tests.fakes.plivo import FakePlivo
from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.twilio import FakeTwilio

pytestmark = pytest.mark.e2e

FROM = "+15550001000"
CALLEE = "+15550002222"
TWILIO_ACCOUNT = "AC" + "0" * 31 + "1"
TWILIO_TOKEN = "fake-auth-token"


class Carrier:
    """One carrier's fake, seen through what the restart tests need from it."""

    name: str

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def placed(self) -> bool:
        """Whether the fake holds the call the gateway placed."""
        raise NotImplementedError

    def live(self) -> bool:
        raise NotImplementedError

    def status_checks(self) -> int:
        """Status requests the gateway made for the call."""
        raise NotImplementedError

    def hangups(self) -> int:
        """Hangup requests the gateway made for the call."""
        raise NotImplementedError

    async def far_end_hangs_up(self) -> None:
        """The callee hangs up (the gateway is down: callbacks cannot reach it)."""
        raise NotImplementedError


class Twilio(Carrier):
    name = "twilio"

    async def open(self) -> None:
        self.fake = FakeTwilio(TWILIO_ACCOUNT, TWILIO_TOKEN)  # a silent callee: no answer lines
        await self.fake.start()

    async def close(self) -> None:
        await self.fake.close()

    def config(self) -> dict[str, Any]:
        twilio = {"accountSid": TWILIO_ACCOUNT, "authToken": TWILIO_TOKEN}
        return {"twilio": {**twilio, "apiBaseUrl": self.fake.base_url}}

    def _sid(self) -> str:
        return next(iter(self.fake.calls))

    def placed(self) -> bool:
        return bool(self.fake.calls)

    def live(self) -> bool:
        return not self.fake.calls[self._sid()].ended.is_set()

    def status_checks(self) -> int:
        return sum(r.method == "GET" for r in self.fake.rest_for(self._sid()))

    def hangups(self) -> int:
        return sum(
            dict(r.form).get("Status") in ("completed", "canceled")
            for r in self.fake.rest_for(self._sid())
        )

    async def far_end_hangs_up(self) -> None:
        with contextlib.suppress(aiohttp.ClientError):  # its status callback finds no gateway
            await self.fake.hang_up(self._sid())


class Telnyx(Carrier):
    name = "telnyx"

    async def open(self) -> None:
        self.fake = FakeTelnyx(answer_delay_s=0.02, reply_delay_s=0.02)
        await self.fake.start()

    async def close(self) -> None:
        await self.fake.close()

    def config(self) -> dict[str, Any]:
        telnyx = {
            "apiKey": self.fake.api_key,
            "connectionId": self.fake.connection_id,
            "publicKey": self.fake.public_key_b64,
            "apiBaseUrl": self.fake.base_url,
        }
        return {"telnyx": telnyx}

    def _ccid(self) -> str:
        return next(iter(self.fake.calls))

    def placed(self) -> bool:
        return bool(self.fake.calls)

    def live(self) -> bool:
        return self.fake.calls[self._ccid()].alive

    def status_checks(self) -> int:
        ccid = self._ccid()
        return sum(r.method == "GET" and r.call_control_id == ccid for r in self.fake.rest)

    def hangups(self) -> int:
        return self.fake.actions(self._ccid()).count("hangup")

    async def far_end_hangs_up(self) -> None:
        ccid = self._ccid()
        self.fake.callee_hangs_up(ccid)
        # Telnyx gives up on a webhook after its retries; the gateway must learn it by status.
        await until(
            lambda: (
                sum(
                    d.event_type == "call.hangup" and d.call_control_id == ccid
                    for d in self.fake.deliveries
                )
                == 3
            )
        )


class Plivo(Carrier):
    name = "plivo"

    async def open(self) -> None:
        # A silent callee: the one scripted answer would come only after the test is over
        # (an empty script makes the fake hang up at the first <GetInput>).
        script, silent_ms = ("Sure.",), 600_000.0
        self.fake = FakePlivo(
            script=script, reply_ms=silent_ms, ring_ms=5, duplicate_every=0, late_every=0
        )
        await self.fake.__aenter__()

    async def close(self) -> None:
        await self.fake.__aexit__(None, None, None)

    def config(self) -> dict[str, Any]:
        plivo = {
            "authId": self.fake.auth_id,
            "authToken": self.fake.auth_token,
            "apiBaseUrl": self.fake.api_base_url,
        }
        return {"plivo": plivo}

    def _call(self) -> PlivoCall:
        return next(iter(self.fake.calls.values()))

    def placed(self) -> bool:
        return bool(self.fake.calls)

    def live(self) -> bool:
        return not self._call().ended.is_set()

    def _requests(self, method: str) -> int:
        call = self._call()
        ids = (f"/{call.call_uuid}/", f"/{call.request_uuid}/")
        return sum(m == method and p.endswith(ids) for m, p, _ in self.fake.requests)

    def status_checks(self) -> int:
        return self._requests("GET")

    def hangups(self) -> int:
        return self._requests("DELETE")

    async def far_end_hangs_up(self) -> None:
        call = self._call()
        self.fake.callee_hangs_up(call)
        await self.fake.wait_ended(call)
        await until(lambda: not self.fake._tasks)  # the hangup callback found no gateway


def gateway_for(home: Path, carrier: Carrier) -> Gateway:
    """`voicecall serve` on fixed ports, so a restart is reachable where the first run was."""
    return Gateway(home, {"provider": carrier.name, "fromNumber": FROM, **carrier.config()})


@pytest.fixture(params=[Twilio, Telnyx, Plivo], ids=["twilio", "telnyx", "plivo"])
async def carrier(request: pytest.FixtureRequest) -> AsyncIterator[Carrier]:
    made: Carrier = request.param()
    await made.open()
    yield made
    await made.close()


@pytest.fixture
async def crashed(
    tmp_path: Path, carrier: Carrier
) -> AsyncIterator[tuple[Gateway, str, list[str]]]:
    """A gateway SIGKILLed with one answered conversation call: (gateway, callId, jsonl lines)."""
    gateway = gateway_for(tmp_path, carrier)
    try:
        await gateway.start()
        result = await gateway.rpc(
            "voicecall.initiate", to=CALLEE, message="Hello there", mode="conversation"
        )
        call_id: str = result["callId"]
        await gateway.wait_call(call_id, "answeredAt")
        await until(lambda: gateway.last_record(call_id).get("answeredAt") is not None)
        await gateway.kill()
        assert carrier.placed() and carrier.live()
        yield gateway, call_id, gateway.lines()
    finally:
        await gateway.aclose()


async def test_live_call_is_kept_and_ended_once_after_restart(
    crashed: tuple[Gateway, str, list[str]], carrier: Carrier
) -> None:
    """A call still up at the carrier survives the crash and `end` hangs it up exactly once."""
    gateway, call_id, before = crashed
    assert carrier.hangups() == 0
    await gateway.start()
    await until(lambda: carrier.status_checks() >= 1)
    call = await gateway.call(call_id)
    assert call["answeredAt"] and not call.get("endedAt")
    assert call["state"] not in ("completed", "timeout", "hangup-bot", "failed")

    assert await gateway.rpc("voicecall.end", callId=call_id) == {"success": True}
    await until(lambda: not carrier.live())
    ended = await gateway.wait_call(call_id, "endedAt")
    assert ended["endReason"] == "hangup-bot"
    assert await gateway.stop() == 0
    assert carrier.hangups() == 1
    assert gateway.lines()[: len(before)] == before
    assert gateway.last_record(call_id)["endReason"] == "hangup-bot"


async def test_call_ended_while_down_is_completed_after_restart(
    crashed: tuple[Gateway, str, list[str]], carrier: Carrier
) -> None:
    """A call that ended at the carrier during the crash is finalized `completed`, no hangup."""
    gateway, call_id, before = crashed
    await carrier.far_end_hangs_up()
    assert not carrier.live()
    await gateway.start()
    ended = await gateway.wait_call(call_id, "endedAt")
    assert ended["endReason"] == "completed"
    await until(lambda: gateway.last_record(call_id).get("endedAt") is not None)
    assert await gateway.stop() == 0
    assert carrier.status_checks() >= 1
    assert carrier.hangups() == 0
    assert gateway.lines()[: len(before)] == before
    assert gateway.last_record(call_id)["endReason"] == "completed"
