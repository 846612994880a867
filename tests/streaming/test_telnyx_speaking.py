"""The bot speaking on Telnyx media streams: greeting and auto-reply heard, marks echoed."""

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
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.tts_common import API_KEY as TTS_KEY
from tests.fakes.tts_elevenlabs import FakeElevenLabsTts
from tests.streaming.conftest import streaming_config
from tests.streaming.media import speech

from voicecall.calls.record import CallRecord
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway

OUR_NUMBER = "+15550001111"
FRIEND = "+15550003333"
GREETING = "Hi, thanks for calling."
LINE = "I need a table for two."
REPLY = "Sure, a table for two at seven."
REPLY_AUDIO = bytes(range(0, 256, 3)) * 40  # ~0.43 s of non-silent µ-law


class Harness:
    """A telnyx gateway hearing through fake Deepgram and speaking through fake ElevenLabs."""

    def __init__(self, gateway: Gateway, telnyx: FakeTelnyx, tts: FakeElevenLabsTts) -> None:
        self.gateway = gateway
        self.telnyx = telnyx
        self.tts = tts
        self.chat: FakeOpenAIChat | None = None  # the model behind the builtin runner

    def record(self, ccid: str) -> CallRecord:
        """The gateway's live record of Telnyx call ``ccid``."""
        runtime: Any = self.gateway.runtime
        record = runtime.find_by_provider_id(ccid)
        assert record is not None
        return runtime.get_record(record.call_id) or record  # type: ignore[no-any-return]

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 30) -> None:
        """Wait until ``predicate()`` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.02)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """The running gateway, fake Telnyx, fake Deepgram (one caller line) and fake ElevenLabs."""
    async with (
        FakeDeepgram([LINE]) as stt,
        FakeElevenLabsTts(audio=REPLY_AUDIO, chunk_bytes=400) as tts,
        FakeOpenAIChat(replies=[json.dumps({"spoken": REPLY})]) as chat,
    ):
        telnyx = FakeTelnyx()
        await telnyx.start()
        keys = {
            "apiKey": telnyx.api_key,
            "connectionId": telnyx.connection_id,
            "publicKey": telnyx.public_key_b64,
            "apiBaseUrl": telnyx.base_url,
        }
        carrier = {"provider": "telnyx", "fromNumber": OUR_NUMBER, "telnyx": keys}
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
        telnyx.connection_webhook_url = gateway.webhook_url
        try:
            harness = Harness(gateway, telnyx, tts)
            harness.chat = chat
            yield harness
        finally:
            await gateway.stop()
            await telnyx.close()


def timed(record: CallRecord) -> bool:
    """Whether the auto turn got its first-frame time (its reply reached the carrier)."""
    return any("firstFrameAt" in t for t in record.metadata.get("turns", []))


def lines(record: CallRecord, speaker: str) -> list[str]:
    """The final transcript lines of one side of a record."""
    return [e.text for e in record.transcript if e.speaker == speaker and e.is_final]


async def test_greeting_and_auto_reply_are_heard_on_the_telnyx_stream(harness: Harness) -> None:
    """Telnyx receives 20 ms PCMU media frames then marks it echoes; the record holds the turn."""
    h = harness
    ccid = h.telnyx.place_inbound_call(from_number=FRIEND, to_number=OUR_NUMBER)
    await h.telnyx.stream_url(ccid)
    async with aiohttp.ClientSession() as session, h.telnyx.media_stream(ccid, session) as media:
        media.listen()
        await media.start()
        await h.until(lambda: "initialMessage" not in h.record(ccid).metadata)
        await media.play(speech("hello"))
        await h.until(lambda: lines(h.record(ccid), "bot") == [GREETING, REPLY])
        await h.until(lambda: timed(h.record(ccid)))
        await h.until(lambda: h.record(ccid).state == "listening")
        await h.until(lambda: len(media.acknowledged) == media.events().count("mark"))
    assert [r.body["text"] for r in h.tts.requests] == [GREETING, REPLY]
    outbound = [f for f in media.received if f["event"] == "media"]
    assert outbound and all(f == {"event": "media", "media": f["media"]} for f in outbound)
    assert all(set(f["media"]) == {"payload"} for f in outbound)
    played = media.played_audio()
    assert all(len(frame) == 160 for frame in played)
    assert REPLY_AUDIO[:160] in played
    marks = [f["mark"]["name"] for f in media.received if f["event"] == "mark"]
    assert len(marks) >= 2 and media.acknowledged == marks
    assert media.events().index("media") < media.events().index("mark")
    record = h.record(ccid)
    assert lines(record, "user") == [LINE]
    assert lines(record, "bot") == [GREETING, REPLY]
    assert h.chat is not None and h.chat.problems == []
    assert LINE in h.chat.requests[0].body["messages"][-1]["content"]
    turn = next(t for t in record.metadata["turns"] if t["kind"] == "auto")
    # The reply streams sentence by sentence: its audio may start before the whole reply.
    assert turn["startedAt"] <= turn["firstTokenAt"] <= turn["firstAudioAt"] <= turn["firstFrameAt"]
    assert turn["startedAt"] <= turn["replyAt"]
    assert turn["responseMs"] == turn["firstFrameAt"] - turn["startedAt"]
    assert "speak" not in h.telnyx.actions(ccid)  # no carrier-native speech once streaming
