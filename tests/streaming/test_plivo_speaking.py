"""The bot speaking on Plivo audio streams: greeting and auto-reply heard, checkpoints played."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.openai_chat import API_KEY as CHAT_KEY
from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.plivo import FakeCall, FakePlivo
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.fakes.tts_common import API_KEY as TTS_KEY
from tests.fakes.tts_elevenlabs import FakeElevenLabsTts
from tests.streaming.conftest import streaming_config
from tests.streaming.media import speech

from voicecall.calls.record import CallRecord
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway

OUR_NUMBER = "+15550001000"
FRIEND = "+15550002222"
GREETING = "Hi, thanks for calling."
LINE = "I need a table for two."
REPLY = "Sure, a table for two at seven."
REPLY_AUDIO = bytes(range(0, 256, 3)) * 40  # ~0.43 s of non-silent µ-law


class Harness:
    """A plivo gateway hearing through fake Deepgram and speaking through fake ElevenLabs."""

    def __init__(self, gateway: Gateway, plivo: FakePlivo, tts: FakeElevenLabsTts) -> None:
        self.gateway = gateway
        self.plivo = plivo
        self.tts = tts
        self.chat: FakeOpenAIChat | None = None  # the model behind the builtin runner

    def dial_in(self) -> FakeCall:
        """A caller from the allowlist dials in; Plivo fetches the answer XML."""
        url = self.gateway.webhook_url
        assert url is not None
        return self.plivo.dial_in(
            from_number=FRIEND,
            to_number=OUR_NUMBER,
            answer_url=f"{url}?provider=plivo&flow=answer",
            hangup_url=f"{url}?provider=plivo&flow=hangup",
        )

    def record(self, call: FakeCall) -> CallRecord:
        """The gateway's live record of the fake call."""
        runtime: Any = self.gateway.runtime
        record = runtime.find_by_provider_id(call.call_uuid)
        assert record is not None
        return runtime.get_record(record.call_id) or record  # type: ignore[no-any-return]

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 30) -> None:
        """Wait until ``predicate()`` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.02)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """The running gateway, fake Plivo, fake Deepgram (one caller line) and fake ElevenLabs."""
    async with (
        FakeDeepgram([LINE]) as stt,
        FakeElevenLabsTts(audio=REPLY_AUDIO, chunk_bytes=400) as tts,
        FakeOpenAIChat(replies=[json.dumps({"spoken": REPLY})]) as chat,
        FakePlivo(duplicate_every=0, late_every=0) as plivo,
    ):
        keys = {
            "authId": plivo.auth_id,
            "authToken": plivo.auth_token,
            "apiBaseUrl": plivo.api_base_url,
        }
        carrier = {"provider": "plivo", "fromNumber": OUR_NUMBER, "plivo": keys}
        raw = streaming_config(carrier, stt.base_url, friend=FRIEND, greeting=GREETING)
        raw["tts"] = {
            "provider": "elevenlabs",
            "providers": {
                "elevenlabs": {"apiKey": TTS_KEY, "baseUrl": tts.base_url, "voiceId": "VOICE123"}
            },
        }
        # The builtin runner: OpenAI-compatible streamed Chat Completions against the fake.
        raw["agent"] = {
            "runner": "builtin",
            "providers": {"openai": {"baseUrl": chat.base_url, "apiKey": CHAT_KEY}},
        }
        raw["responseModel"] = "openai/gpt-fake"
        gateway = Gateway(
            VoicecallConfig.model_validate(raw),
            env={"VOICECALL_HOME": str(tmp_path)},
        )
        await gateway.start()
        try:
            harness = Harness(gateway, plivo, tts)
            harness.chat = chat
            yield harness
        finally:
            await plivo.aclose_calls()
            await gateway.stop()


def timed(record: CallRecord) -> bool:
    """Whether the auto turn got its first-frame time (its reply reached the carrier)."""
    return any("firstFrameAt" in t for t in record.metadata.get("turns", []))


def lines(record: CallRecord, speaker: str) -> list[str]:
    """The final transcript lines of one side of a record."""
    return [e.text for e in record.transcript if e.speaker == speaker and e.is_final]


async def test_greeting_and_auto_reply_are_heard_on_the_plivo_stream(harness: Harness) -> None:
    """Plivo receives 20 ms µ-law playAudio frames then checkpoints it answers as played."""
    h = harness
    call = h.dial_in()
    await h.plivo.stream_of(call)
    async with (
        aiohttp.ClientSession() as session,
        h.plivo.audio_stream(call, session=session) as media,
    ):
        media.listen()
        await media.start()
        await h.until(lambda: "initialMessage" not in h.record(call).metadata)
        await media.play(speech("hello"))
        await h.until(lambda: lines(h.record(call), "bot") == [GREETING, REPLY])
        await h.until(lambda: timed(h.record(call)))
        await h.until(lambda: h.record(call).state == "listening")
        await h.until(lambda: len(media.acknowledged) == media.events().count("checkpoint"))
    assert [r.body["text"] for r in h.tts.requests] == [GREETING, REPLY]
    outbound = [f for f in media.received if f["event"] == "playAudio"]
    assert outbound and all(set(f) == {"event", "media"} for f in outbound)
    formats = {(f["media"]["contentType"], f["media"]["sampleRate"]) for f in outbound}
    assert formats == {("audio/x-mulaw", 8000)}
    played = media.played_audio()
    assert all(len(frame) == 160 for frame in played)
    assert REPLY_AUDIO[:160] in played
    checkpoints = [f for f in media.received if f["event"] == "checkpoint"]
    assert all(f["streamId"] == media.stream_id for f in checkpoints)
    assert len(checkpoints) >= 2 and media.acknowledged == [f["name"] for f in checkpoints]
    assert media.events().index("playAudio") < media.events().index("checkpoint")
    record = h.record(call)
    assert lines(record, "user") == [LINE]
    assert lines(record, "bot") == [GREETING, REPLY]
    assert h.chat is not None and h.chat.problems == []
    assert LINE in h.chat.requests[0].body["messages"][-1]["content"]
    turn = next(t for t in record.metadata["turns"] if t["kind"] == "auto")
    # The reply streams sentence by sentence: its audio may start before the whole reply.
    assert turn["startedAt"] <= turn["firstTokenAt"] <= turn["firstAudioAt"] <= turn["firstFrameAt"]
    assert turn["startedAt"] <= turn["replyAt"]
    assert turn["responseMs"] == turn["firstFrameAt"] - turn["startedAt"]
