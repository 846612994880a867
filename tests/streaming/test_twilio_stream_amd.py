"""Answering-machine detection on streamed Twilio calls: a machine never gets the stream.

With ``voicemail.detection: twilio`` an outbound conversation call is held until the verdict
(up to ``holdOpeningMaxMs``) before ``<Connect><Stream>`` is served. A machine then hears the
message with carrier speech and the call ends ``voicemail`` (leave-message), a human gets the
stream and the greeting plays on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.fakes.tts_common import API_KEY as TTS_KEY
from tests.fakes.tts_elevenlabs import FakeElevenLabsTts
from tests.fakes.twilio import wait_for
from tests.streaming.conftest import Harness, gateway_config
from tests.streaming.media import StreamingTwilio
from tests.streaming.test_speaking import REPLY_AUDIO, Phone, bot_lines, tts_texts

from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway

MESSAGE = "This is your pharmacy: your order is ready."
Setup = Callable[..., Any]


@pytest.fixture
async def amd(tmp_path: Any) -> AsyncIterator[Setup]:
    """A streamed twilio gateway with answering-machine detection on (leave-message)."""
    stack: list[Any] = []

    async def make(verdicts: list[str]) -> tuple[Harness, FakeElevenLabsTts]:
        stt = FakeDeepgram([], api_key="stt-key")
        await stt.__aenter__()
        stack.append(stt.__aexit__)
        tts = FakeElevenLabsTts(audio=REPLY_AUDIO, chunk_bytes=400)
        await tts.__aenter__()
        stack.append(tts.__aexit__)
        twilio = StreamingTwilio("AC" + "0" * 31 + "1", "fake-auth-token")
        twilio.amd_verdicts = verdicts
        await twilio.start()
        stack.append(lambda *_: twilio.close())
        raw = gateway_config(twilio, stt.base_url, "deepgram")
        raw["streaming"]["providers"]["deepgram"]["apiKey"] = "stt-key"
        raw["voicemail"] = {"detection": "twilio"}
        raw["tts"] = {
            "provider": "elevenlabs",
            "providers": {
                "elevenlabs": {"apiKey": TTS_KEY, "baseUrl": tts.base_url, "voiceId": "V1"}
            },
        }
        gateway = Gateway(
            VoicecallConfig.model_validate(raw), env={"VOICECALL_HOME": str(tmp_path)}
        )
        await gateway.start()
        stack.append(lambda *_: gateway.stop())
        session = aiohttp.ClientSession()
        stack.append(lambda *_: session.close())
        return Harness(gateway, twilio, stt, session), tts

    yield make
    for close in reversed(stack):
        await close(None, None, None)


async def place(h: Harness) -> tuple[str, str]:
    """An outbound conversation call with an opening message: (call id, CallSid)."""
    runtime: Any = h.gateway.runtime
    started = await runtime.initiate(to="+15550009999", message=MESSAGE, mode="conversation")
    await wait_for(lambda: bool(h.twilio.calls))
    return started["callId"], next(iter(h.twilio.calls))


async def test_machine_gets_the_message_by_carrier_speech_and_never_the_stream(
    amd: Setup,
) -> None:
    """Machine verdicts: no <Stream> is served, the message is said after the beep, the call
    ends voicemail, and nothing was synthesized for a stream."""
    h, tts = await amd(["machine_start", "machine_end_beep"])
    call_id, sid = await place(h)
    call = await h.twilio.wait_ended(sid)
    assert call.timeline == ["amd:machine_start", "amd:machine_end_beep", f"say:{MESSAGE}"]
    assert sid not in h.twilio.stream_docs
    assert tts_texts(tts) == []
    runtime: Any = h.gateway.runtime
    record = runtime.get_record(call_id)
    await h.until(lambda: runtime.get_record(call_id).ended_at_ms is not None)
    record = runtime.get_record(call_id)
    assert record.end_reason == "voicemail"
    assert [(e.speaker, e.text) for e in record.transcript] == [("bot", MESSAGE)]


async def test_human_verdict_gets_the_stream_and_the_greeting_plays_on_it(amd: Setup) -> None:
    """A human verdict releases the hold: <Connect><Stream> is served and the opening message
    is synthesized and played on the stream, never with carrier speech."""
    h, tts = await amd(["human"])
    _call_id, sid = await place(h)
    doc = await h.twilio.stream_doc(sid)
    call = h.twilio.calls[sid]
    assert call.timeline[0] == "amd:human"
    assert "Connect" in call.verbs and not any(v.startswith("say") for v in call.timeline)
    async with h.media(doc.url) as media:
        phone = Phone(media)
        phone.start()
        await media.start(sid, doc.token)
        await h.until(lambda: REPLY_AUDIO[:160] in phone.media_frames())
        await h.until(lambda: "initialMessage" not in h.record(sid).metadata)
        await phone.stop()
    assert tts_texts(tts) == [MESSAGE]
    assert bot_lines(h, sid) == [MESSAGE]
    assert h.record(sid).metadata["answeredBy"] == "human"
    assert h.record(sid).ended_at_ms is None
