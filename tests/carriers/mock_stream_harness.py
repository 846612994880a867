"""A live gateway on the mock carrier with media streams, a fake Deepgram and RPC over HTTP.

The gateway binds 127.0.0.1 on a free webhook port and an ephemeral control port, with no
``publicUrl``: the mock's stream URLs are then ``ws://127.0.0.1:<port>/voice/stream/<token>``.
Media sockets are :class:`tests.streaming.media.TwilioMediaClient` (the mock's frames are
Twilio's).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from tests.fakes.stt_common import API_KEY
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.streaming.media import TwilioMediaClient

from voicecall.calls.record import CallRecord
from voicecall.carriers.mock import MockCarrier
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway

__all__ = ["CALLEE", "MakeMockHarness", "MockStreamHarness", "mock_harnesses"]

CALLEE = "+15550002222"
FAST_MOCK = {"ringMs": 1, "answerMs": 2, "replyMs": 1, "speechMsPerChar": 0}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mock_config(stt_url: str, *, streaming: bool = True, **mock: Any) -> dict[str, Any]:
    """A mock-carrier gateway config; ``streaming`` through the fake Deepgram at ``stt_url``."""
    return {
        "provider": "mock",
        "fromNumber": "+15550001000",
        "serve": {"bind": "127.0.0.1", "port": _free_port()},
        "rpc": {"bind": "127.0.0.1", "port": 0},
        "mock": {**FAST_MOCK, **mock},
        "streaming": {
            "enabled": streaming,
            "provider": "deepgram",
            "providers": {"deepgram": {"apiKey": API_KEY, "baseUrl": stt_url}},
        },
    }


class MockStreamHarness:
    """A running mock gateway, its fake STT and helpers for calls, status and media sockets."""

    def __init__(self, gateway: Gateway, stt: FakeDeepgram, session: aiohttp.ClientSession) -> None:
        self.gateway = gateway
        self.stt = stt
        self.session = session

    @property
    def carrier(self) -> MockCarrier:
        """The gateway's mock carrier."""
        carrier = self.gateway._carrier  # the simulated callee
        assert isinstance(carrier, MockCarrier)
        return carrier

    async def rpc(self, method: str, params: dict[str, Any]) -> Any:
        """One JSON-RPC call over the control listener; returns ``result`` (errors fail)."""
        url = self.gateway.rpc_url
        assert url is not None
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with self.session.post(url, json=body) as response:
            data = await response.json()
        assert "error" not in data, data
        return data["result"]

    async def start_call(self) -> str:
        """An outbound conversation call to :data:`CALLEE`; returns its callId."""
        result = await self.rpc("voicecall.start", {"to": CALLEE, "mode": "conversation"})
        return str(result["callId"])

    async def status(self, call_id: str) -> dict[str, Any]:
        """``voicecall.status`` of one call (its ``call`` object)."""
        result = await self.rpc("voicecall.status", {"callId": call_id})
        assert result["found"] is True
        call: dict[str, Any] = result["call"]
        return call

    def record(self, call_id: str) -> CallRecord:
        """The gateway's record of the call."""
        runtime: Any = self.gateway.runtime
        record = runtime.get_record(call_id)
        assert record is not None
        return record  # type: ignore[no-any-return]

    async def post_event(self, event: dict[str, Any]) -> int:
        """POST one mock webhook event; returns the HTTP status."""
        url = self.gateway.webhook_url
        assert url is not None
        async with self.session.post(url, json={"event": event}) as response:
            return response.status

    def media(self, url: str) -> TwilioMediaClient:
        """A Twilio-format media websocket to ``url``."""
        return TwilioMediaClient(self.session, url)

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 30) -> None:
        """Wait until ``predicate()`` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.01)

    async def until_async(
        self, predicate: Callable[[], Awaitable[bool]], timeout_s: float = 30
    ) -> None:
        """:meth:`until` for an awaitable predicate."""
        async with asyncio.timeout(timeout_s):
            while not await predicate():
                await asyncio.sleep(0.01)


MakeMockHarness = Callable[..., Awaitable[MockStreamHarness]]


@contextlib.asynccontextmanager
async def mock_harnesses(home: Path) -> AsyncIterator[MakeMockHarness]:
    """Builds harnesses that store under ``home``: ``await make(script=[...], **mock)``.

    ``streaming=False`` turns media streams off. Everything built is stopped on exit.
    """
    stack: list[Callable[[], Awaitable[Any]]] = []

    async def make(
        script: list[str] | None = None, *, streaming: bool = True, **mock: Any
    ) -> MockStreamHarness:
        stt = FakeDeepgram(script or [], api_key=API_KEY)
        await stt.__aenter__()
        stack.append(lambda: stt.__aexit__(None, None, None))
        raw = mock_config(stt.base_url, streaming=streaming, **mock)
        gateway = Gateway(VoicecallConfig.model_validate(raw), env={"VOICECALL_HOME": str(home)})
        await gateway.start()
        stack.append(gateway.stop)
        session = aiohttp.ClientSession()
        stack.append(session.close)
        return MockStreamHarness(gateway, stt, session)

    try:
        yield make
    finally:
        for close in reversed(stack):
            await close()
