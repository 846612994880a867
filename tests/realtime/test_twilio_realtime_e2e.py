"""A realtime call end to end on Twilio with the OpenAI Realtime provider (SPEC §3.2 step 8, §7).

Everything is real but the far ends: the gateway (webhook listener, realtime socket server,
runtime, bridge, OpenAI session) runs in process; Twilio is the fake that executes
``<Connect><Stream>``, the phone is a Twilio media-stream client that echoes marks, and OpenAI is
the fake Realtime server answering each ``response.create`` with the next scripted response.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.realtime_openai import FakeOpenAIRealtime, ScriptedResponse
from tests.realtime.e2e import (
    FRAME,
    GREETING,
    OPENING,
    GatewayHarness,
    RealtimePhone,
    audio,
    close_all,
    instructions,
    openai_realtime,
    served_on,
)
from tests.streaming.conftest import free_port
from tests.streaming.media import StreamDoc, StreamingTwilio, frames

from voicecall.agent.types import Payload, RunRequest, RunResult
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway
from voicecall.realtime.instructions import greeting_directive
from voicecall.realtime.tools import CONSULT_SYSTEM_PROMPT, SAFE_READ_ONLY_TOOLS

ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "fake-auth-token"
FROM = "+15550001000"
FRIEND = "+15550002222"
CALLEE = "+15550003333"


class Agent:
    """An agent runner that answers consults (not used by these calls' scripts)."""

    def __init__(self) -> None:
        self.requests: list[RunRequest] = []

    async def run(self, request: RunRequest) -> RunResult:
        self.requests.append(request)
        return RunResult([Payload("It is sunny.")])


@dataclass
class Harness(GatewayHarness):
    twilio: StreamingTwilio
    openai: FakeOpenAIRealtime
    session: aiohttp.ClientSession
    agent: Agent

    async def phone(self, doc: StreamDoc, sid: str) -> RealtimePhone:
        phone = RealtimePhone(self.session, doc.url)
        await phone.__aenter__()
        phone.listen()
        await phone.start(sid, None)
        return phone

    def response_idle(self) -> bool:
        return self.openai._active is None  # the fake streamed its whole response


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    stack: list[Callable[[], Any]] = []

    async def make(
        responses: list[ScriptedResponse],
        *,
        prewarm: bool | None = None,
        realtime_clock: Callable[[], float] | None = None,
    ) -> Harness:
        openai = FakeOpenAIRealtime(responses)
        await openai.__aenter__()
        stack.append(lambda: openai.__aexit__(None, None, None))
        twilio = StreamingTwilio(ACCOUNT, TOKEN)
        await twilio.start()
        stack.append(twilio.close)
        port = free_port()
        raw = {
            "provider": "twilio",
            "fromNumber": FROM,
            "twilio": {"accountSid": ACCOUNT, "authToken": TOKEN, "apiBaseUrl": twilio.base_url},
            **served_on(port),
            "inboundPolicy": "allowlist",
            "allowFrom": [FRIEND],
            "inboundGreeting": GREETING,
            "realtime": openai_realtime(openai),
        }
        if prewarm is not None:
            raw["realtime"]["prewarm"] = prewarm
        agent = Agent()
        gateway = Gateway(
            VoicecallConfig.model_validate(raw),
            env={"VOICECALL_HOME": str(tmp_path)},
            runner=agent,
            realtime_clock=realtime_clock,
        )
        await gateway.start()
        stack.append(gateway.stop)
        session = aiohttp.ClientSession()
        stack.append(session.close)
        return Harness(gateway, twilio, openai, session, agent)

    yield make
    await close_all(stack)


def _bot_lines(h: Harness, call_id: str) -> list[str]:
    return [e.text for e in h.record(call_id).transcript if e.speaker == "bot"]


async def test_an_outbound_conversation_call_runs_on_the_realtime_model_and_ends_itself(
    make_harness: Callable[..., Any],
) -> None:
    greeting_audio = audio(12, 1)
    farewell_audio = audio(40, 2)  # 800 ms: still playing when end_call arrives
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
    await h.until(lambda: bool(h.twilio.calls))
    sid = next(iter(h.twilio.calls))
    doc = await h.twilio.stream_doc(sid)
    # T-REALTIME: the token is the last path segment, no <Parameter>.
    assert "/voice/stream/realtime/" in doc.url
    assert doc.token == ""
    phone = await h.phone(doc, sid)
    try:
        # The model is told the opening and asked for its first response.
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        await h.openai.wait_for(lambda: bool(h.openai.connection.of_type("response.create")))
        assert greeting_directive(OPENING) in instructions(h.openai)
        record = h.record(call_id)
        assert "initialMessage" not in record.metadata
        assert [e.text for e in record.transcript if e.speaker == "bot"] == []  # none written
        # Its audio reaches the phone as paced 160-byte µ-law frames with marks.
        await h.until(lambda: len(phone.played()) >= len(greeting_audio))
        assert all(len(f) == FRAME for f in phone.media_frames())
        assert phone.played() == greeting_audio
        await h.until(lambda: bool(phone.acknowledged))
        assert all(name.startswith("playout-") for name in phone.acknowledged)
        await h.until(h.response_idle)
        # The caller talks: audio to the model, the transcript into the record.
        await phone.play(frames(audio(10, 3)), frame_s=0.0)
        await h.openai.wait_for(lambda: len(h.openai.audio) > 0)
        await h.openai.user_says("Can we move it to Friday?")
        await h.until(
            lambda: any(e.speaker == "user" for e in h.record(call_id).transcript),
        )
        texts = [(e.speaker, e.text) for e in h.record(call_id).transcript]
        assert ("user", "Can we move it to Friday?") in texts
        assert ("bot", "Hello, this is your assistant.") in texts
        # voicecall.speak asks the model for a response: the goodbye. The RPC returns once the
        # response's audio has played (every frame sent, its last mark echoed by the phone), and
        # writes no bot line of its own: the model's words are the record of what was said.
        marks_before = len(phone.acknowledged)
        result = await h.gateway.call(
            "voicecall.speak", {"callId": call_id, "message": "Say goodbye."}
        )
        assert result["success"] is True
        assert phone.played() == greeting_audio + farewell_audio
        assert len(phone.acknowledged) > marks_before
        bot_lines = [e.text for e in h.record(call_id).transcript if e.speaker == "bot"]
        assert "Say goodbye." not in bot_lines
        await h.until(lambda: "Goodbye, talk soon!" in _bot_lines(h, call_id))
        await h.until(h.response_idle)
        # The model hangs up: the goodbye plays out first, then the call ends hangup-bot.
        await h.gateway.call("voicecall.speak", {"callId": call_id, "message": "End the call."})
        await h.until(lambda: h.record(call_id).ended_at_ms is not None)
        ended = h.record(call_id)
        assert ended.end_reason == "hangup-bot"
        assert phone.played() == greeting_audio + farewell_audio
        assert ("bot", "Goodbye, talk soon!") in [(e.speaker, e.text) for e in ended.transcript]
        assert isinstance(ended.metadata.get("realtimeFirstAudioMs"), int)
        await h.twilio.wait_ended(sid)
        assert any(r.method == "POST" and ("Status", "completed") in r.form for r in h.twilio.rest)
        listener = phone._listener
        assert listener is not None and phone.ws is not None
        await asyncio.wait_for(listener, 20)  # the gateway closed the socket
        assert phone.ws.close_code == 1000
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_an_inbound_allowlisted_call_gets_the_greeting_a_realtime_turn_and_first_audio(
    make_harness: Callable[..., Any],
) -> None:
    greeting_audio = audio(10, 4)
    reply_audio = audio(10, 5)
    h: Harness = await make_harness(
        [
            ScriptedResponse(greeting_audio, "Hi friend, how can I help?"),
            ScriptedResponse(reply_audio, "It is sunny."),
        ]
    )
    assert h.gateway.webhook_url is not None
    call = await h.twilio.dial_in(FRIEND, FROM, h.gateway.webhook_url)
    doc = await h.twilio.stream_doc(call.sid)
    assert "/voice/stream/realtime/" in doc.url
    phone = await h.phone(doc, call.sid)
    try:
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        await h.openai.wait_for(lambda: bool(h.openai.connection.of_type("response.create")))
        assert greeting_directive(GREETING) in instructions(h.openai)
        record = h.runtime.find_by_provider_id(call.sid)
        assert record is not None and record.direction == "inbound"
        call_id = record.call_id
        await h.until(lambda: phone.played() == greeting_audio)
        await h.until(h.response_idle)
        await phone.play(frames(audio(5, 6)), frame_s=0.0)
        await h.openai.user_says("What's the weather?")
        await h.until(lambda: any(e.speaker == "user" for e in h.record(call_id).transcript))
        await h.gateway.call("voicecall.speak", {"callId": call_id, "message": "It is sunny."})
        await h.until(lambda: phone.played() == greeting_audio + reply_audio)

        def measured() -> bool:
            turns = h.record(call_id).metadata.get("turns") or []
            return any(t.get("kind") == "realtime" for t in turns)

        await h.until(measured)
        metadata = h.record(call_id).metadata
        turn = next(t for t in metadata["turns"] if t["kind"] == "realtime")
        assert turn["responseMs"] == turn["completedAt"] - turn["startedAt"] >= 0
        assert isinstance(metadata.get("realtimeFirstAudioMs"), int)
        # The caller hangs up: Twilio stops the stream; the call ends after the disconnect grace.
        await phone.stop()
        await h.until(lambda: h.record(call_id).ended_at_ms is not None)
        assert h.record(call_id).end_reason == "hangup-bot"  # SPEC §2.7 grace expiry
        await h.until(lambda: h.openai.connection.ws.state.name != "OPEN")
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_an_agent_consult_runs_the_agent_with_the_consult_prompt_and_answers_the_model(
    make_harness: Callable[..., Any],
) -> None:
    h: Harness = await make_harness(
        [
            ScriptedResponse(audio(5, 7), "Hi friend, how can I help?"),
            ScriptedResponse(tool=("agent_consult", json.dumps({"question": "Weather today?"}))),
            ScriptedResponse(audio(5, 8), "It is sunny."),
        ]
    )
    assert h.gateway.webhook_url is not None
    call = await h.twilio.dial_in(FRIEND, FROM, h.gateway.webhook_url)
    doc = await h.twilio.stream_doc(call.sid)
    phone = await h.phone(doc, call.sid)
    try:
        await h.openai.wait_for(lambda: bool(h.openai.connections))
        await h.until(lambda: len(phone.played()) == 5 * FRAME)
        await h.until(h.response_idle)
        record = h.runtime.find_by_provider_id(call.sid)
        assert record is not None
        await h.gateway.call("voicecall.speak", {"callId": record.call_id, "message": "Check."})

        def outputs() -> list[dict[str, Any]]:
            items = [e["item"] for e in h.openai.connection.of_type("conversation.item.create")]
            return [json.loads(i["output"]) for i in items if i["type"] == "function_call_output"]

        await h.until(lambda: bool(outputs()))
        assert outputs() == [{"answer": "It is sunny.", "source": "agent"}]
        request = h.agent.requests[0]
        assert request.extra_system_prompt == CONSULT_SYSTEM_PROMPT
        assert request.tools_allow == list(SAFE_READ_ONLY_TOOLS)
        assert request.timeout_ms == 30000
        assert "Weather today?" in request.message
        await h.until(lambda: len(phone.played()) == 10 * FRAME)  # the model speaks the answer
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_speak_before_the_realtime_socket_is_admitted_fails_without_carrier_speech(
    make_harness: Callable[..., Any],
) -> None:
    greeting_audio = audio(5, 9)
    h: Harness = await make_harness([ScriptedResponse(greeting_audio, "Hello there.")])
    started = await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": OPENING, "mode": "conversation"}
    )
    call_id = started["callId"]
    await h.until(lambda: bool(h.twilio.calls))
    sid = next(iter(h.twilio.calls))
    doc = await h.twilio.stream_doc(sid)  # T-REALTIME served; the socket is not connected yet
    rest_before = len(h.twilio.rest)
    with pytest.raises(Exception, match="realtime stream not connected yet"):
        await h.gateway.call("voicecall.speak", {"callId": call_id, "message": "Too early."})
    # No carrier speech: nothing replaced the stream document.
    assert len(h.twilio.rest) == rest_before
    assert "Too early." not in _bot_lines(h, call_id)
    record = h.record(call_id)
    assert record.ended_at_ms is None
    # The socket still connects and the call goes on as a realtime call.
    phone = await h.phone(doc, sid)
    try:
        await h.until(lambda: phone.played() == greeting_audio)
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


def _token(doc: StreamDoc) -> str:
    return doc.url.rstrip("/").rsplit("/", 1)[-1]


async def test_prewarm_opens_the_provider_session_when_the_twiml_is_served(
    make_harness: Callable[..., Any],
) -> None:
    greeting_audio = audio(8, 10)
    h: Harness = await make_harness([ScriptedResponse(greeting_audio, "Hello, it is me.")])
    started = await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": OPENING, "mode": "conversation"}
    )
    call_id = started["callId"]
    await h.until(lambda: bool(h.twilio.calls))
    sid = next(iter(h.twilio.calls))
    doc = await h.twilio.stream_doc(sid)
    host = h.gateway.realtime_host
    # The provider session is connected and configured (greeting directive included) and
    # ready while no media socket exists yet; its SessionReady waits in the pre-warm buffer.
    await h.openai.wait_for(lambda: bool(h.openai.connections))
    await h.openai.wait_for(lambda: bool(h.openai.connection.of_type("session.update")))
    prewarm = host.prewarms[_token(doc)]
    await h.until(lambda: prewarm.ready)
    assert call_id not in host.calls  # not admitted: the phone has not connected
    assert h.openai.connection.of_type("response.create") == []  # no greeting before `start`
    assert greeting_directive(OPENING) in instructions(h.openai)
    phone = await h.phone(doc, sid)
    try:
        # Admission attaches the pre-warmed session: the greeting plays, on that one connection.
        await h.until(lambda: phone.played() == greeting_audio)
        assert len(h.openai.connections) == 1
        assert len(h.openai.connection.of_type("session.update")) == 1
        assert host.prewarms == {}
        record = h.record(call_id)
        assert "initialMessage" not in record.metadata
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)


async def test_an_unused_token_releases_and_closes_the_prewarmed_session(
    make_harness: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    now = [1000.0]
    h: Harness = await make_harness(
        [ScriptedResponse(audio(4, 11), "Hi.")], realtime_clock=lambda: now[0]
    )
    started = await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": OPENING, "mode": "conversation"}
    )
    call_id = started["callId"]
    await h.until(lambda: bool(h.twilio.calls))
    sid = next(iter(h.twilio.calls))
    doc = await h.twilio.stream_doc(sid)
    host = h.gateway.realtime_host
    prewarm = host.prewarms[_token(doc)]
    await h.until(lambda: prewarm.ready)
    connection = h.openai.connection
    assert host.is_realtime(call_id)
    # The carrier never connects: the token expires (30 s on the injected clock).
    now[0] += 31
    with caplog.at_level("INFO"):
        assert h.gateway.realtime_streams.sweep() == 1
        await h.until(lambda: connection.ws.state.name == "CLOSED")
    assert host.prewarms == {}
    assert not host.is_realtime(call_id)
    assert any(
        f"realtime stream for call {call_id} never connected" in r.getMessage()
        for r in caplog.records
    )
    assert connection.of_type("response.create") == []
    # The expired token is refused (HTTP 401) if the carrier shows up after all.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await h.session.ws_connect(doc.url)
    assert refused.value.status == 401
    assert len(h.openai.connections) == 1
    assert h.openai.problems == []


async def test_without_prewarm_the_session_opens_on_admission(
    make_harness: Callable[..., Any],
) -> None:
    greeting_audio = audio(6, 12)
    h: Harness = await make_harness([ScriptedResponse(greeting_audio, "Hello.")], prewarm=False)
    await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": OPENING, "mode": "conversation"}
    )
    await h.until(lambda: bool(h.twilio.calls))
    sid = next(iter(h.twilio.calls))
    doc = await h.twilio.stream_doc(sid)
    assert h.gateway.realtime_host.prewarms == {}
    phone = await h.phone(doc, sid)
    try:
        await h.until(lambda: phone.played() == greeting_audio)
        assert len(h.openai.connections) == 1
        assert h.openai.problems == []
    finally:
        await phone.__aexit__(None, None, None)
