"""An in-process gateway on provider twilio with media streams, a fake Twilio and a fake STT."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from tests.fakes.stt_common import API_KEY, FakeSttServer
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.fakes.stt_elevenlabs import FakeElevenLabs
from tests.fakes.stt_mistral import FakeMistral
from tests.fakes.stt_openai import FakeOpenAI
from tests.fakes.stt_xai import FakeXai
from tests.streaming.media import StreamDoc, StreamingTwilio, TwilioMediaClient

from voicecall.calls.record import CallRecord
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway

ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "fake-auth-token"
FROM = "+15550001000"
FRIEND = "+15550002222"
GREETING = "Hi friend, how can I help?"

STT_FAKES: dict[str, tuple[type[FakeSttServer], str]] = {
    "deepgram": (FakeDeepgram, ""),
    "openai": (FakeOpenAI, "/v1"),
    "elevenlabs": (FakeElevenLabs, ""),
    "mistral": (FakeMistral, ""),
    "xai": (FakeXai, ""),
}


def free_port() -> int:
    """A currently free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def streaming_config(
    carrier: dict[str, Any],
    stt_url: str,
    provider: str = "deepgram",
    *,
    friend: str = FRIEND,
    greeting: str = GREETING,
    **streaming: Any,
) -> dict[str, Any]:
    """A gateway config for ``carrier`` (provider and its keys) on a free port, ``friend`` on the
    allowlist, streaming through STT ``provider`` at ``stt_url``."""
    port = free_port()
    return {
        **carrier,
        "webhookSecurity": {"allowPrivateWebhookUrl": True},
        "publicUrl": f"http://127.0.0.1:{port}/voice/webhook",
        "serve": {"port": port},
        "rpc": {"port": 0},
        "inboundPolicy": "allowlist",
        "allowFrom": [friend],
        "inboundGreeting": greeting,
        "streaming": {
            "enabled": True,
            "provider": provider,
            "providers": {provider: {"apiKey": API_KEY, "baseUrl": stt_url}},
            **streaming,
        },
    }


def gateway_config(
    fake: StreamingTwilio, stt_url: str, provider: str, **streaming: Any
) -> dict[str, Any]:
    """A twilio gateway config with streaming through ``provider`` at ``stt_url``."""
    twilio = {"accountSid": ACCOUNT, "authToken": TOKEN, "apiBaseUrl": fake.base_url}
    carrier = {"provider": "twilio", "fromNumber": FROM, "twilio": twilio}
    return streaming_config(carrier, stt_url, provider, **streaming)


class Harness:
    """A running gateway, its fakes and helpers to place calls and open media streams."""

    def __init__(
        self,
        gateway: Gateway,
        twilio: StreamingTwilio,
        stt: FakeSttServer,
        session: aiohttp.ClientSession,
    ) -> None:
        self.gateway = gateway
        self.twilio = twilio
        self.stt = stt
        self.session = session

    @property
    def webhook_url(self) -> str:
        url = self.gateway.webhook_url
        assert url is not None
        return url

    async def inbound_call(self) -> tuple[str, StreamDoc]:
        """A caller from the allowlist dials in; returns its CallSid and the stream document."""
        call = await self.twilio.dial_in(FRIEND, FROM, self.webhook_url)
        return call.sid, await self.twilio.stream_doc(call.sid)

    def media(self, url: str) -> TwilioMediaClient:
        """A media websocket to ``url``."""
        return TwilioMediaClient(self.session, url)

    def record(self, sid: str) -> CallRecord:
        """The gateway's record of Twilio call ``sid``."""
        runtime: Any = self.gateway.runtime
        record = runtime.find_by_provider_id(sid)
        assert record is not None
        return record  # type: ignore[no-any-return]

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 30) -> None:
        """Wait until ``predicate()`` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.02)

    async def metrics(self) -> str:
        """The /metrics text."""
        url = self.gateway.control_url
        async with self.session.get(f"{url}/metrics") as response:
            return await response.text()

    def persisted(self, call_id: str) -> list[dict[str, Any]]:
        """Every persisted snapshot of a call, oldest first."""
        home = self.gateway.config.store_dir(self.gateway.env) / "calls.jsonl"
        lines = [json.loads(line) for line in home.read_text().splitlines() if line.strip()]
        return [r for r in lines if r["callId"] == call_id]


MakeHarness = Callable[..., Any]


@pytest.fixture
async def make_harness(tmp_path: Any) -> AsyncIterator[MakeHarness]:
    """Builds harnesses: ``await make_harness(provider="deepgram", script=[...], **streaming)``."""
    stack: list[Any] = []

    async def make(
        provider: str = "deepgram",
        script: list[str] | None = None,
        stt_api_key: str = API_KEY,
        **streaming: Any,
    ) -> Harness:
        fake_type, base_path = STT_FAKES[provider]
        stt = fake_type(script or [], api_key=stt_api_key)
        await stt.__aenter__()
        stack.append(stt.__aexit__)
        twilio = StreamingTwilio(ACCOUNT, TOKEN)
        await twilio.start()
        stack.append(lambda *_: twilio.close())
        raw = gateway_config(twilio, stt.base_url + base_path, provider, **streaming)
        env = {"VOICECALL_HOME": str(tmp_path)}
        gateway = Gateway(VoicecallConfig.model_validate(raw), env=env)
        await gateway.start()
        stack.append(lambda *_: gateway.stop())
        session = aiohttp.ClientSession()
        stack.append(lambda *_: session.close())
        return Harness(gateway, twilio, stt, session)

    yield make
    for close in reversed(stack):
        await close(None, None, None)
