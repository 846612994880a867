"""A realtime call end to end on Plivo with the OpenAI Realtime provider (SPEC §3.4, §7.1).

Everything is real but the far ends: the gateway (webhook listener, realtime socket server,
runtime, bridge, OpenAI session) runs in process; Plivo is the fake that fetches the answer XML
and runs its ``<Stream>``; the phone is a Plivo audio-stream client (Plivo frames, checkpoints
answered with ``playedStream``); OpenAI is the fake Realtime server answering each
``response.create`` with the next scripted response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.plivo import FakeCall, FakePlivo, PlivoAudioStream
from tests.fakes.realtime_openai import FakeOpenAIRealtime, ScriptedResponse
from tests.realtime.e2e import (
    FRAME,
    GREETING,
    OPENING,
    GatewayHarness,
    audio,
    close_all,
    instructions,
    openai_realtime,
    served_on,
)
from tests.streaming.conftest import free_port

from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway
from voicecall.realtime.instructions import greeting_directive

OUR_NUMBER = "+15550001000"
FRIEND = "+15550002222"
CALLEE = "+15550003333"
REALTIME_PATH = "/voice/stream/realtime/"


def _played(phone: PlivoAudioStream) -> bytes:
    return b"".join(phone.played_audio())


@dataclass
class Harness(GatewayHarness):
    plivo: FakePlivo
    openai: FakeOpenAIRealtime
    session: aiohttp.ClientSession

    def dial_in(self, from_number: str = FRIEND) -> FakeCall:
        url = self.gateway.webhook_url
        assert url is not None
        return self.plivo.dial_in(
            from_number=from_number,
            to_number=OUR_NUMBER,
            answer_url=f"{url}?provider=plivo&flow=answer",
            hangup_url=f"{url}?provider=plivo&flow=hangup",
        )

    async def phone(self, call: FakeCall) -> PlivoAudioStream:
        """The Plivo end of the call's ``<Stream>``, connected to its URL."""
        await self.plivo.stream_of(call)
        phone = self.plivo.audio_stream(call, session=self.session)
        await phone.__aenter__()
        phone.listen()
        await phone.start()
        return phone

    def response_idle(self) -> bool:
        return self.openai._active is None  # the fake streamed its whole response


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    stack: list[Callable[[], Any]] = []

    async def make(responses: list[ScriptedResponse]) -> Harness:
        openai = FakeOpenAIRealtime(responses)
        await openai.__aenter__()
        stack.append(lambda: openai.__aexit__(None, None, None))
        plivo = FakePlivo(duplicate_every=0, late_every=0)
        await plivo.__aenter__()
        stack.append(lambda: plivo.__aexit__(None, None, None))
        port = free_port()
        raw = {
            "provider": "plivo",
            "fromNumber": OUR_NUMBER,
            "plivo": {
                "authId": plivo.auth_id,
                "authToken": plivo.auth_token,
                "apiBaseUrl": plivo.api_base_url,
            },
            **served_on(port),
            "inboundPolicy": "allowlist",
            "allowFrom": [FRIEND],
            "inboundGreeting": GREETING,
            "realtime": openai_realtime(openai),
        }
        gateway = Gateway(
            VoicecallConfig.model_validate(raw), env={"VOICECALL_HOME": str(tmp_path)}
        )
        await gateway.start()
        stack.append(gateway.stop)
        stack.append(plivo.aclose_calls)
        session = aiohttp.ClientSession()
        stack.append(session.close)
        return Harness(gateway, plivo, openai, session)

    yield make
    await close_all(stack)


async def test_an_outbound_conversation_call_streams_to_the_realtime_model_and_ends_itself(
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
    request_uuid = h.record(call_id).provider_call_id
    assert request_uuid is not None
    call = h.plivo.call_for_request(request_uuid)
    assert call is not None
    # The answer XML is the bidirectional <Stream> on the realtime path, token in the path.
    url = await h.plivo.stream_of(call)
    assert REALTIME_PATH in url and url.startswith("ws://127.0.0.1:")
    assert call.stream_attrs["bidirectional"] == "true"
    assert call.stream_attrs["contentType"] == "audio/x-mulaw;rate=8000"
    phone = await h.phone(call)
    try:
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        await h.openai.wait_for(lambda: bool(h.openai.connection.of_type("response.create")))
        assert greeting_directive(OPENING) in instructions(h.openai)
        assert "initialMessage" not in h.record(call_id).metadata
        # The greeting reaches the phone as Plivo playAudio frames of 160 bytes, checkpoints
        # answered with playedStream.
        await h.until(lambda: len(_played(phone)) >= len(greeting_audio))
        assert all(len(f) == FRAME for f in phone.played_audio())
        assert _played(phone) == greeting_audio
        outbound = [f for f in phone.received if f.get("event") == "playAudio"]
        assert all(f["media"]["contentType"] == "audio/x-mulaw" for f in outbound)
        await h.until(lambda: bool(phone.acknowledged))
        assert all(name.startswith("playout-") for name in phone.acknowledged)
        await h.until(h.response_idle)
        await h.until(lambda: ("bot", "Hello, this is your assistant.") in h.transcript(call_id))
        # The caller talks: Plivo media reaches the model, the transcript lands in the record.
        await phone.play(audio(10, 3), frame_s=0.0)
        await h.openai.wait_for(lambda: len(h.openai.audio) > 0)
        await h.openai.user_says("Can we move it to Friday?")
        await h.until(lambda: ("user", "Can we move it to Friday?") in h.transcript(call_id))
        # voicecall.speak: the model says goodbye, then hangs up once it has played.
        await h.gateway.call("voicecall.speak", {"callId": call_id, "message": "Say goodbye."})
        await h.until(lambda: len(_played(phone)) > len(greeting_audio))
        await h.until(h.response_idle)
        await h.gateway.call("voicecall.speak", {"callId": call_id, "message": "End the call."})
        await h.until(lambda: h.record(call_id).ended_at_ms is not None)
        ended = h.record(call_id)
        assert ended.end_reason == "hangup-bot"
        assert _played(phone) == greeting_audio + farewell_audio
        assert ("bot", "Goodbye, talk soon!") in [(e.speaker, e.text) for e in ended.transcript]
        assert isinstance(ended.metadata.get("realtimeFirstAudioMs"), int)
        await h.plivo.wait_ended(call)
        assert call.heard == []  # nothing spoken by Plivo <Speak>
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_an_inbound_allowlisted_call_is_answered_onto_the_realtime_bridge(
    make_harness: Callable[..., Any],
) -> None:
    greeting_audio = audio(10, 4)
    h: Harness = await make_harness([ScriptedResponse(greeting_audio, GREETING)])
    call = h.dial_in()
    url = await h.plivo.stream_of(call)
    assert REALTIME_PATH in url
    phone = await h.phone(call)
    try:
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        await h.openai.wait_for(lambda: bool(h.openai.connection.of_type("response.create")))
        assert greeting_directive(GREETING) in instructions(h.openai)
        record = h.runtime.find_by_provider_id(call.call_uuid)
        assert record is not None and record.direction == "inbound"
        call_id = record.call_id
        await h.until(lambda: _played(phone) == greeting_audio)
        await h.until(lambda: ("bot", GREETING) in h.transcript(call_id))
        # Recorded as soon as the greeting is heard, before any hang-up can end the call.
        metadata = lambda: h.record(call_id).metadata  # noqa: E731
        await h.until(lambda: isinstance(metadata().get("realtimeFirstAudioMs"), int))
        # The caller hangs up: Plivo closes the socket; the call ends after the grace.
        h.plivo.callee_hangs_up(call)
        await phone.__aexit__(None, None, None)
        await h.until(lambda: h.record(call_id).ended_at_ms is not None)
        assert h.record(call_id).end_reason == "completed"
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_an_inbound_caller_the_policy_rejects_gets_no_stream(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness([])
    call = h.dial_in(from_number="+15559990000")
    await h.plivo.wait_ended(call)
    assert call.hangup_reason == "rejected"
    assert call.stream_url is None
    assert h.gateway.realtime_streams.pending_tokens == 0


async def test_a_notify_call_never_streams(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness([])
    started = await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": "Your parcel is here.", "mode": "notify"}
    )
    request_uuid = h.record(started["callId"]).provider_call_id
    assert request_uuid is not None
    call = h.plivo.call_for_request(request_uuid)
    assert call is not None
    await h.plivo.wait_ended(call)
    assert call.heard == ["Your parcel is here."]
    assert call.stream_url is None
    assert h.gateway.realtime_streams.pending_tokens == 0
