"""A streamed model reply is spoken sentence by sentence on a media stream (SPEC §8.4)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from tests.fakes.openai_chat import API_KEY as CHAT_KEY
from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.fakes.tts_common import API_KEY as TTS_KEY
from tests.streaming.conftest import GREETING, Harness, gateway_config
from tests.streaming.media import StreamingTwilio, frames, speech
from tests.streaming.test_speaking import (
    SILENCE,
    PerTextTts,
    Phone,
    bot_lines,
    tts_texts,
    user_lines,
)

from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway

FIRST = "First sentence here."
SECOND = "Second one follows after a pause."
REPLY = json.dumps({"spoken": f"{FIRST} {SECOND}"})
FIRST_CHUNK = REPLY[: REPLY.index(FIRST) + len(FIRST) + 1]  # up to the space after "here."
FIRST_AUDIO = b"\x10" * 160 * 20
SECOND_AUDIO = b"\x20" * 160 * 20


Setup = Callable[..., Any]


@pytest.fixture
async def streamed(tmp_path: Any) -> AsyncIterator[Setup]:
    """Builds a twilio gateway whose builtin runner streams from a paused fake chat server."""
    stack: list[Any] = []

    async def make(
        script: list[str], replies: list[str], first_audio: bytes = FIRST_AUDIO
    ) -> tuple[Harness, FakeOpenAIChat, PerTextTts]:
        stt = FakeDeepgram(script, api_key="stt-key")
        await stt.__aenter__()
        stack.append(stt.__aexit__)
        chat = FakeOpenAIChat(replies=replies, chunk_chars=len(FIRST_CHUNK))
        chat.gate.clear()  # the model pauses after the first sentence's deltas
        await chat.__aenter__()
        stack.append(chat.__aexit__)
        tts = PerTextTts(by_text={FIRST: first_audio, SECOND: SECOND_AUDIO})
        await tts.__aenter__()
        stack.append(tts.__aexit__)
        twilio = StreamingTwilio("AC" + "0" * 31 + "1", "fake-auth-token")
        await twilio.start()
        stack.append(lambda *_: twilio.close())
        raw = gateway_config(twilio, stt.base_url, "deepgram")
        raw["streaming"]["providers"]["deepgram"]["apiKey"] = "stt-key"
        raw["tts"] = {
            "provider": "elevenlabs",
            "providers": {
                "elevenlabs": {"apiKey": TTS_KEY, "baseUrl": tts.base_url, "voiceId": "VOICE123"}
            },
        }
        raw["agent"] = {
            "runner": "builtin",
            "providers": {"openai": {"baseUrl": chat.base_url, "apiKey": CHAT_KEY}},
        }
        raw["responseModel"] = "openai/gpt-fake"
        gateway = Gateway(
            VoicecallConfig.model_validate(raw), env={"VOICECALL_HOME": str(tmp_path)}
        )
        await gateway.start()
        stack.append(lambda *_: gateway.stop())
        session = aiohttp.ClientSession()
        stack.append(lambda *_: session.close())
        return Harness(gateway, twilio, stt, session), chat, tts

    yield make
    for close in reversed(stack):
        await close(None, None, None)


async def test_first_sentence_is_heard_while_the_model_is_still_writing(streamed: Setup) -> None:
    """The caller hears sentence 1 while the model is paused, then sentence 2; one bot line."""
    h, chat, tts = await streamed(["Book a table."], [REPLY])
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        phone = Phone(media)
        phone.start()
        await media.start(sid, doc.token)
        await h.until(lambda: "initialMessage" not in h.record(sid).metadata)
        await media.play(frames(speech("hello")))
        await h.until(lambda: FIRST_AUDIO[:160] in phone.media_frames())
        # The model is still paused after its first sentence: nothing more was generated.
        assert chat.first_chunk_sent.is_set() and not chat.gate.is_set()
        assert tts_texts(tts) == [GREETING, FIRST]
        assert bot_lines(h, sid) == [GREETING]
        chat.gate.set()
        await h.until(lambda: SECOND_AUDIO[:160] in phone.media_frames())
        await h.until(lambda: h.record(sid).state == "listening")
        await h.until(lambda: len(bot_lines(h, sid)) == 2)
        await phone.stop()
    assert tts_texts(tts) == [GREETING, FIRST, SECOND]
    sent = phone.media_frames()
    assert sent.index(FIRST_AUDIO[:160]) < sent.index(SECOND_AUDIO[:160])
    assert bot_lines(h, sid) == [GREETING, f"{FIRST} {SECOND}"]
    turn = next(t for t in h.record(sid).metadata["turns"] if t["kind"] == "auto")
    assert turn["startedAt"] <= turn["firstAudioAt"] <= turn["firstFrameAt"] <= turn["replyAt"]
    assert turn["responseMs"] == turn["firstFrameAt"] - turn["startedAt"]
    # Every stage of the turn is stamped in order: the caller's speech end by the stream's VAD,
    # the transcript, the model's first token (streamed), first audio, first frame.
    assert turn["callerStoppedAt"] <= turn["startedAt"] <= turn["firstTokenAt"]
    assert turn["firstTokenAt"] <= turn["firstAudioAt"]
    assert "interrupted" not in turn
    assert chat.problems == [] and tts.problems == []


async def test_barge_in_during_the_first_sentence_never_plays_the_second(streamed: Setup) -> None:
    """Caller speech during sentence 1 clears it; no frame of sentence 2 is ever sent."""
    long_first = FIRST_AUDIO * 40  # ~16 s: still playing when the caller speaks
    silent = json.dumps({"spoken": ""})
    h, chat, tts = await streamed(["Book a table.", "Wait, stop."], [REPLY, silent], long_first)
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        phone = Phone(media)
        phone.start()
        await media.start(sid, doc.token)
        await h.until(lambda: "initialMessage" not in h.record(sid).metadata)
        first = frames(speech("hello") + SILENCE)
        await media.play(first)
        await h.until(lambda: FIRST_AUDIO[:160] in phone.media_frames())
        marks = phone.kinds().count("mark")
        await h.until(lambda: phone.kinds().count("mark") >= marks + 2)  # 1 s of it was heard
        await media.play(frames(speech("hello"), first_chunk=len(first) + 1))
        await h.until(lambda: "clear" in phone.kinds())
        await h.until(lambda: user_lines(h, sid) == ["Book a table.", "Wait, stop."])
        chat.gate.set()  # the model would go on; its run was cancelled by the barge-in
        await h.until(lambda: len(chat.requests) == 2)
        runtime: Any = h.gateway.runtime
        await runtime.wait_idle()
        await phone.stop()
    assert SECOND_AUDIO[:160] not in phone.media_frames()
    assert SECOND not in tts_texts(tts)
    after_clear = phone.kinds()[phone.kinds().index("clear") + 1 :]
    assert "media" not in after_clear
    record = h.record(sid)
    assert record.ended_at_ms is None
    # What the caller heard of sentence 1 is the bot's line, before the interruption.
    lines = [(e.speaker, e.text) for e in record.transcript]
    heard = lines[2][1]
    assert lines[:2] == [("bot", GREETING), ("user", "Book a table.")]
    assert lines[2][0] == "bot" and heard and FIRST.startswith(heard)
    assert lines[3:] == [("user", "Wait, stop.")]
    turn = next(t for t in record.metadata["turns"] if t["kind"] == "auto")
    assert turn["interrupted"] is True
    assert turn["startedAt"] <= turn["firstTokenAt"] <= turn["firstAudioAt"]
    assert turn["firstAudioAt"] <= turn["firstFrameAt"] == turn["completedAt"]
