"""A realtime call end to end on Telnyx with the OpenAI Realtime provider (SPEC §3.3, §7.1).

Everything is real but the far ends: the gateway (webhook listener, realtime socket server,
runtime, bridge, OpenAI session) runs in process; Telnyx is the fake Call Control that answers,
dials and reports the ``stream_url`` it was given; the phone is a Telnyx media-stream client
(Telnyx frames, marks echoed); OpenAI is the fake Realtime server answering each
``response.create`` with the next scripted response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.realtime_openai import FakeOpenAIRealtime, ScriptedResponse
from tests.fakes.telnyx import FakeTelnyx, TelnyxMediaStream
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

OUR_NUMBER = "+15550001111"
FRIEND = "+15550003333"
CALLEE = "+15550002222"
REALTIME_PATH = "/voice/stream/realtime/"


def _played(phone: TelnyxMediaStream) -> bytes:
    return b"".join(phone.played_audio())


@dataclass
class Harness(GatewayHarness):
    telnyx: FakeTelnyx
    openai: FakeOpenAIRealtime
    session: aiohttp.ClientSession

    async def phone(self, ccid: str) -> TelnyxMediaStream:
        """The Telnyx end of the call's media stream, connected to its ``stream_url``."""
        await self.telnyx.stream_url(ccid)
        phone = self.telnyx.media_stream(ccid, self.session)
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
        telnyx = FakeTelnyx()
        await telnyx.start()
        stack.append(telnyx.close)
        port = free_port()
        raw = {
            "provider": "telnyx",
            "fromNumber": OUR_NUMBER,
            "telnyx": {
                "apiKey": telnyx.api_key,
                "connectionId": telnyx.connection_id,
                "publicKey": telnyx.public_key_b64,
                "apiBaseUrl": telnyx.base_url,
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
        telnyx.connection_webhook_url = gateway.webhook_url
        session = aiohttp.ClientSession()
        stack.append(session.close)
        return Harness(gateway, telnyx, openai, session)

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
    ccid = h.record(call_id).provider_call_id
    assert ccid is not None
    # streaming_start on call.answered, with the realtime path and the token in stream_url.
    url = await h.telnyx.stream_url(ccid)
    assert REALTIME_PATH in url
    call = h.telnyx.calls[ccid]
    assert call.stream_auth_token and url.endswith("/" + call.stream_auth_token)
    assert "streaming_start" in h.telnyx.actions(ccid)
    assert "transcription_start" not in h.telnyx.actions(ccid)
    phone = await h.phone(ccid)
    try:
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        await h.openai.wait_for(lambda: bool(h.openai.connection.of_type("response.create")))
        assert greeting_directive(OPENING) in instructions(h.openai)
        assert "initialMessage" not in h.record(call_id).metadata
        # The greeting reaches the phone as Telnyx media frames of 160 bytes, with marks.
        await h.until(lambda: len(_played(phone)) >= len(greeting_audio))
        assert all(len(f) == FRAME for f in phone.played_audio())
        assert _played(phone) == greeting_audio
        outbound = [f for f in phone.received if f.get("event") == "media"]
        assert all(set(f) == {"event", "media"} for f in outbound)  # Telnyx shape: no streamSid
        await h.until(lambda: bool(phone.acknowledged))
        assert all(name.startswith("playout-") for name in phone.acknowledged)
        await h.until(h.response_idle)
        await h.until(lambda: ("bot", "Hello, this is your assistant.") in h.transcript(call_id))
        # The caller talks: Telnyx media reaches the model, the transcript lands in the record.
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
        await h.telnyx.wait_for(lambda: "hangup" in h.telnyx.actions(ccid))
        assert "speak" not in h.telnyx.actions(ccid)  # nothing spoken by Telnyx TTS
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_an_inbound_allowlisted_call_is_answered_onto_the_realtime_bridge(
    make_harness: Callable[..., Any],
) -> None:
    greeting_audio = audio(10, 4)
    h: Harness = await make_harness([ScriptedResponse(greeting_audio, GREETING)])
    ccid = h.telnyx.place_inbound_call(from_number=FRIEND, to_number=OUR_NUMBER)
    # The answer command itself carries the realtime stream fields.
    url = await h.telnyx.stream_url(ccid)
    assert REALTIME_PATH in url
    assert h.telnyx.actions(ccid)[0] == "answer"
    answer = next(r for r in h.telnyx.rest if r.action == "answer")
    assert answer.body["stream_url"] == url
    assert answer.body["stream_codec"] == "PCMU"
    assert answer.body["stream_bidirectional_mode"] == "rtp"
    phone = await h.phone(ccid)
    try:
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        await h.openai.wait_for(lambda: bool(h.openai.connection.of_type("response.create")))
        assert greeting_directive(GREETING) in instructions(h.openai)
        record = h.runtime.find_by_provider_id(ccid)
        assert record is not None and record.direction == "inbound"
        call_id = record.call_id
        await h.until(lambda: _played(phone) == greeting_audio)
        await h.until(lambda: ("bot", GREETING) in h.transcript(call_id))
        # The caller hangs up: Telnyx stops the stream; the call ends after the grace.
        await phone.stop()
        await h.until(lambda: h.record(call_id).ended_at_ms is not None)
        assert isinstance(h.record(call_id).metadata.get("realtimeFirstAudioMs"), int)
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_an_inbound_caller_the_policy_rejects_gets_no_stream(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness([])
    ccid = h.telnyx.place_inbound_call(from_number="+15559990000", to_number=OUR_NUMBER)
    await h.telnyx.wait_for(lambda: "hangup" in h.telnyx.actions(ccid))
    assert "answer" not in h.telnyx.actions(ccid)
    assert h.telnyx.calls[ccid].stream_url is None
    assert h.gateway.realtime_streams.pending_tokens == 0


async def test_a_notify_call_never_streams(make_harness: Callable[..., Any]) -> None:
    h: Harness = await make_harness([])
    started = await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": "Your parcel is here.", "mode": "notify"}
    )
    ccid = h.record(started["callId"]).provider_call_id
    assert ccid is not None
    await h.telnyx.wait_for(lambda: "speak" in h.telnyx.actions(ccid))
    assert h.telnyx.calls[ccid].heard == ["Your parcel is here."]
    assert "streaming_start" not in h.telnyx.actions(ccid)
    assert h.telnyx.calls[ccid].stream_url is None
    assert h.gateway.realtime_streams.pending_tokens == 0
