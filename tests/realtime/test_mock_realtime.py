"""Realtime calls on the mock carrier with the OpenAI Realtime provider (SPEC §3.6, §7.1).

With ``realtime.enabled`` a mock conversation call gets its realtime URL minted at
``call.answered`` and reported as ``streamUrl`` by ``voicecall.status``; a Twilio-format media
client on it is admitted by the realtime bridge, hears the model's greeting as Twilio ``media``
frames and the model's words land in the call's transcript. The gateway, its webhook listener,
the realtime socket server and the bridge are real; OpenAI is the fake Realtime server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.realtime_openai import FakeOpenAIRealtime, ScriptedResponse
from tests.realtime.e2e import (
    FRAME,
    OPENING,
    GatewayHarness,
    RealtimePhone,
    audio,
    close_all,
    instructions,
    openai_realtime,
)
from tests.streaming.conftest import free_port
from tests.streaming.media import frames

from voicecall.carriers.mock import MockCarrier
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway
from voicecall.realtime.instructions import greeting_directive

OUR_NUMBER = "+15550001000"
CALLEE = "+15550002222"
CALLER = "+15550004444"
FAST_MOCK = {"ringMs": 1, "answerMs": 2, "replyMs": 1, "speechMsPerChar": 0}


@dataclass
class Harness(GatewayHarness):
    openai: FakeOpenAIRealtime
    session: aiohttp.ClientSession

    @property
    def carrier(self) -> MockCarrier:
        carrier = self.gateway._carrier
        assert isinstance(carrier, MockCarrier)
        return carrier

    async def until_async(
        self, predicate: Callable[[], Awaitable[bool]], timeout_s: float = 30
    ) -> None:
        async with asyncio.timeout(timeout_s):
            while not await predicate():
                await asyncio.sleep(0.01)

    async def status(self, call_id: str) -> dict[str, Any]:
        result = await self.gateway.call("voicecall.status", {"callId": call_id})
        assert result["found"] is True
        call: dict[str, Any] = result["call"]
        return call

    async def stream_url(self, call_id: str) -> str:
        """Wait until ``voicecall.status`` reports the call's stream URL (minted at answer)."""
        seen: dict[str, Any] = {}

        async def has_url() -> bool:
            seen.update(await self.status(call_id))
            return "streamUrl" in seen

        await self.until_async(has_url)
        assert "answeredAt" in seen
        return str(seen["streamUrl"])

    async def phone(self, url: str, provider_call_id: str) -> RealtimePhone:
        phone = RealtimePhone(self.session, url)
        await phone.__aenter__()
        phone.listen()
        await phone.start(provider_call_id, None)
        return phone

    def response_idle(self) -> bool:
        return self.openai._active is None  # the fake streamed its whole response


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    stack: list[Callable[[], Any]] = []

    async def make(responses: list[ScriptedResponse], **extra: Any) -> Harness:
        openai = FakeOpenAIRealtime(responses)
        await openai.__aenter__()
        stack.append(lambda: openai.__aexit__(None, None, None))
        raw = {
            "provider": "mock",
            "fromNumber": OUR_NUMBER,
            "serve": {"bind": "127.0.0.1", "port": free_port()},
            "rpc": {"bind": "127.0.0.1", "port": 0},
            "mock": FAST_MOCK,
            "realtime": openai_realtime(openai),
            **extra,
        }
        gateway = Gateway(
            VoicecallConfig.model_validate(raw), env={"VOICECALL_HOME": str(tmp_path)}
        )
        await gateway.start()
        stack.append(gateway.stop)
        session = aiohttp.ClientSession()
        stack.append(session.close)
        return Harness(gateway, openai, session)

    yield make
    await close_all(stack)


async def test_an_outbound_conversation_call_reports_its_realtime_url_and_runs_on_the_model(
    make_harness: Callable[..., Any],
) -> None:
    greeting_audio = audio(12, 1)
    farewell_audio = audio(20, 2)
    h: Harness = await make_harness(
        [
            ScriptedResponse(greeting_audio, "Hello, this is your assistant."),
            ScriptedResponse(farewell_audio, "Goodbye, talk soon!"),
            ScriptedResponse(tool=("end_call", "{}")),
        ]
    )
    started = await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": OPENING, "mode": "conversation"}
    )
    call_id = started["callId"]
    url = await h.stream_url(call_id)
    port = h.gateway.config.serve.port
    assert url.startswith(f"ws://127.0.0.1:{port}/voice/stream/realtime/")
    assert h.gateway.realtime_streams.pending_tokens == 1
    pcid = h.record(call_id).provider_call_id
    assert pcid == f"mock-{call_id}"
    phone = await h.phone(url, pcid)
    try:
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        await h.openai.wait_for(lambda: bool(h.openai.connection.of_type("response.create")))
        assert greeting_directive(OPENING) in instructions(h.openai)
        assert "initialMessage" not in h.record(call_id).metadata
        # The greeting reaches the phone as Twilio media frames of 160 bytes, with marks.
        await h.until(lambda: len(phone.played()) >= len(greeting_audio))
        assert all(len(f) == FRAME for f in phone.media_frames())
        assert phone.played() == greeting_audio
        media = [f for f in phone.received if f["event"] == "media"]
        assert all(f["streamSid"] == phone.stream_sid for f in media)
        await h.until(lambda: bool(phone.acknowledged))
        assert all(name.startswith("playout-") for name in phone.acknowledged)
        await h.until(h.response_idle)
        await h.until(lambda: ("bot", "Hello, this is your assistant.") in h.transcript(call_id))
        # The callee talks: audio to the model, its transcript into the record.
        await phone.play(frames(audio(10, 3)), frame_s=0.0)
        await h.openai.wait_for(lambda: len(h.openai.audio) > 0)
        await h.openai.user_says("Can we move it to Friday?")
        await h.until(lambda: ("user", "Can we move it to Friday?") in h.transcript(call_id))
        # voicecall.speak: the model says goodbye, then hangs up once it has played.
        await h.gateway.call("voicecall.speak", {"callId": call_id, "message": "Say goodbye."})
        await h.until(lambda: len(phone.played()) > len(greeting_audio))
        await h.until(h.response_idle)
        await h.gateway.call("voicecall.speak", {"callId": call_id, "message": "End the call."})
        await h.until(lambda: h.record(call_id).ended_at_ms is not None)
        ended = h.record(call_id)
        assert ended.end_reason == "hangup-bot"
        assert phone.played() == greeting_audio + farewell_audio
        assert ("bot", "Goodbye, talk soon!") in [(e.speaker, e.text) for e in ended.transcript]
        assert isinstance(ended.metadata.get("realtimeFirstAudioMs"), int)
        # Nothing was spoken through the mock's text "TTS".
        assert [c.name for c in h.carrier.commands_for(pcid) if c.name == "playTts"] == []
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_a_simulated_inbound_call_gets_a_realtime_url_and_the_greeting(
    make_harness: Callable[..., Any],
) -> None:
    greeting = "Hi, thanks for calling."
    greeting_audio = audio(8, 4)
    h: Harness = await make_harness(
        [ScriptedResponse(greeting_audio, greeting)],
        inboundGreeting=greeting,
        inboundPolicy="allowlist",
        allowFrom=[CALLER],
    )
    pcid = await h.carrier.simulate_inbound_call(from_number=CALLER, to_number=OUR_NUMBER)
    await h.until(lambda: h.runtime.find_by_provider_id(pcid) is not None)
    call_id = h.runtime.find_by_provider_id(pcid).call_id
    assert h.record(call_id).direction == "inbound"
    url = await h.stream_url(call_id)
    assert "/voice/stream/realtime/" in url
    phone = await h.phone(url, pcid)
    try:
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        await h.openai.wait_for(lambda: bool(h.openai.connection.of_type("response.create")))
        assert greeting_directive(greeting) in instructions(h.openai)
        await h.until(lambda: phone.played() == greeting_audio)
        await h.until(lambda: ("bot", greeting) in h.transcript(call_id))
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_the_realtime_url_is_single_use(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness([ScriptedResponse(audio(4, 5), "Hello.")])
    started = await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": OPENING, "mode": "conversation"}
    )
    call_id = started["callId"]
    url = await h.stream_url(call_id)
    phone = await h.phone(url, f"mock-{call_id}")
    try:
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await h.session.ws_connect(url)
        assert refused.value.status == 401
    finally:
        await phone.__aexit__(None, None, None)


async def test_a_notify_call_gets_no_stream_url(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness([])
    started = await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": "Your parcel is here.", "mode": "notify"}
    )
    call_id = started["callId"]
    pcid = f"mock-{call_id}"
    await h.until(lambda: any(c.name == "playTts" for c in h.carrier.commands_for(pcid)))
    assert "streamUrl" not in await h.status(call_id)
    assert h.gateway.realtime_streams.pending_tokens == 0


async def test_a_simulated_inbound_caller_the_policy_rejects_gets_no_stream_url(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness([])  # inboundPolicy "disabled"
    pcid = await h.carrier.simulate_inbound_call(from_number=CALLER, to_number=OUR_NUMBER)
    await h.until(lambda: h.runtime.find_by_provider_id(pcid) is not None)
    record = h.runtime.find_by_provider_id(pcid)
    await h.until(lambda: h.runtime.find_by_provider_id(pcid).ended_at_ms is not None)
    assert "streamUrl" not in record.metadata
    assert h.gateway.realtime_streams.pending_tokens == 0
