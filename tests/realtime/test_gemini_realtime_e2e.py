"""A realtime call end to end on Twilio with the Gemini Live provider (SPEC §3.2 step 8, §7, §7.8).

The same scenario as ``test_twilio_realtime_e2e.py``, with ``realtime.provider: "google"``:
the gateway (webhook listener, realtime socket server, runtime, bridge, Gemini Live session on
the google-genai SDK) runs in process; Twilio is the fake that executes ``<Connect><Stream>``,
the phone is a Twilio media-stream client that echoes marks, and Gemini is the TLS fake
BidiGenerateContent server, which answers each complete ``clientContent`` turn with a scripted
PCM16 24 kHz reply. The SDK forces ``wss``, so the gateway is given a session factory (its
tests-only ``realtime_session_factory``) that trusts the fake's throwaway certificate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.realtime_gemini import API_KEY, FakeGeminiLive, GeminiConnection, tone_pcm16
from tests.realtime.e2e import (
    FRAME,
    OPENING,
    GatewayHarness,
    RealtimePhone,
    audio,
    close_all,
    served_on,
)
from tests.streaming.conftest import free_port
from tests.streaming.media import StreamDoc, StreamingTwilio, frames

from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway
from voicecall.realtime.google import GeminiLiveSession
from voicecall.realtime.instructions import greeting_directive
from voicecall.realtime.registry import RealtimeSelection
from voicecall.realtime.session import RealtimeEventCallback, SessionConfig

ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "fake-auth-token"
FROM = "+15550001000"
CALLEE = "+15550003333"
REPLY_TEXT = "Hello, this is your assistant."


@dataclass
class Harness(GatewayHarness):
    twilio: StreamingTwilio
    gemini: FakeGeminiLive
    session: aiohttp.ClientSession
    sessions: list[GeminiLiveSession]

    async def phone(self, doc: StreamDoc, sid: str) -> RealtimePhone:
        phone = RealtimePhone(self.session, doc.url)
        await phone.__aenter__()
        phone.listen()
        await phone.start(sid, None)
        return phone


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    stack: list[Callable[[], Any]] = []

    async def make(reply_audio: bytes) -> Harness:
        gemini = FakeGeminiLive(reply_audio=reply_audio, reply_text=REPLY_TEXT)
        await gemini.__aenter__()
        stack.append(lambda: gemini.__aexit__(None, None, None))
        twilio = StreamingTwilio(ACCOUNT, TOKEN)
        await twilio.start()
        stack.append(twilio.close)
        port = free_port()
        raw = {
            "provider": "twilio",
            "fromNumber": FROM,
            "twilio": {"accountSid": ACCOUNT, "authToken": TOKEN, "apiBaseUrl": twilio.base_url},
            **served_on(port),
            "realtime": {
                "enabled": True,
                "provider": "google",
                "providers": {"google": {"apiKey": API_KEY, "baseUrl": gemini.base_url}},
            },
        }
        sessions: list[GeminiLiveSession] = []

        def trusting_factory(
            selection: RealtimeSelection, config: SessionConfig, on_event: RealtimeEventCallback
        ) -> GeminiLiveSession:
            # create_realtime_session's google branch, plus the fake's certificate.
            assert selection.id == "google"
            session = GeminiLiveSession(
                config,
                api_key=selection.api_key,
                on_event=on_event,
                base_url=selection.base_url,
                ssl_context=gemini.client_ssl,
            )
            sessions.append(session)
            return session

        gateway = Gateway(
            VoicecallConfig.model_validate(raw),
            env={"VOICECALL_HOME": str(tmp_path)},
            realtime_session_factory=trusting_factory,
        )
        await gateway.start()
        stack.append(gateway.stop)
        session = aiohttp.ClientSession()
        stack.append(session.close)
        return Harness(gateway, twilio, gemini, session, sessions)

    yield make
    await close_all(stack)


def _system_instruction(conn: GeminiConnection) -> str:
    assert conn.setup is not None
    parts = conn.setup["systemInstruction"]["parts"]
    return "".join(str(p["text"]) for p in parts)


async def test_an_outbound_conversation_call_runs_on_gemini_live_and_ends_itself(
    make_harness: Callable[..., Any],
) -> None:
    reply_audio = tone_pcm16(0.4)  # PCM16 24 kHz: 400 ms, 20 frames of µ-law 8 kHz
    h: Harness = await make_harness(reply_audio)
    started = await h.gateway.call(
        "voicecall.initiate", {"to": CALLEE, "message": OPENING, "mode": "conversation"}
    )
    call_id = started["callId"]
    await h.until(lambda: bool(h.twilio.calls))
    sid = next(iter(h.twilio.calls))
    doc = await h.twilio.stream_doc(sid)
    assert "/voice/stream/realtime/" in doc.url
    phone = await h.phone(doc, sid)
    try:
        # The setup carries the greeting directive in the system instruction; a client turn
        # (turnComplete) asks for the first response.
        await h.gemini.wait_connections(1, timeout_s=30)
        conn = h.gemini.current
        assert conn.authorized
        assert greeting_directive(OPENING) in _system_instruction(conn)
        await h.gemini.wait_for(lambda: any(complete for _, complete in conn.turns), 30)
        assert h.sessions and all(isinstance(s, GeminiLiveSession) for s in h.sessions)
        record = h.record(call_id)
        assert "initialMessage" not in record.metadata
        # The reply's PCM16 24 kHz audio reaches the phone as 160-byte µ-law frames with marks.
        await h.until(lambda: len(phone.media_frames()) >= 15)
        assert all(len(f) == FRAME for f in phone.media_frames())
        await h.until(lambda: bool(phone.acknowledged))
        assert all(name.startswith("playout-") for name in phone.acknowledged)
        # The assistant's transcript lands in the record.
        await h.until(
            lambda: (
                ("bot", REPLY_TEXT) in [(e.speaker, e.text) for e in h.record(call_id).transcript]
            )
        )
        # The caller talks: PCM16 16 kHz reaches the fake; its transcription lands as a user line.
        await phone.play(frames(audio(10, 3)), frame_s=0.0)
        await h.gemini.wait_for(lambda: len(conn.audio) > 0, 30)
        assert len(conn.audio) % 2 == 0
        await h.gemini.input_transcription("Can we move it to Friday?", finished=True)
        await h.until(
            lambda: (
                ("user", "Can we move it to Friday?")
                in [(e.speaker, e.text) for e in h.record(call_id).transcript]
            )
        )
        # The model hangs up with end_call: the call ends hangup-bot.
        await h.gemini.tool_call("end_call", {})
        await h.until(lambda: h.record(call_id).ended_at_ms is not None)
        ended = h.record(call_id)
        assert ended.end_reason == "hangup-bot"
        assert ("bot", REPLY_TEXT) in [(e.speaker, e.text) for e in ended.transcript]
        assert isinstance(ended.metadata.get("realtimeFirstAudioMs"), int)
        await h.twilio.wait_ended(sid)
        assert any(r.method == "POST" and ("Status", "completed") in r.form for r in h.twilio.rest)
        listener = phone._listener
        assert listener is not None and phone.ws is not None
        await asyncio.wait_for(listener, 20)  # the gateway closed the socket
        assert phone.ws.close_code == 1000
        await h.gemini.wait_closed(conn, 20)
        assert h.gemini.problems == []
    finally:
        await phone.__aexit__(None, None, None)
