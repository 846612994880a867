"""The bot speaking on Twilio media streams: greeting, replies, speak, barge-in, apology."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.fakes.tts_common import API_KEY
from tests.fakes.tts_elevenlabs import FakeElevenLabsTts
from tests.streaming.conftest import GREETING, Harness, gateway_config
from tests.streaming.media import StreamingTwilio, TwilioMediaClient, frames, speech

from voicecall.agent.types import Payload, RunRequest, RunResult
from voicecall.calls.turns import REPLY_APOLOGY
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway
from voicecall.streaming.speaker import APOLOGY

REPLY_AUDIO = bytes(range(0, 256, 3)) * 40  # ~0.43 s of non-silent µ-law
SILENCE = b"\xff" * 160 * 40  # 0.8 s: Twilio streams silence between utterances too


class Phone:
    """The carrier's side of one media socket: records what the gateway sends, echoes marks."""

    def __init__(self, media: TwilioMediaClient) -> None:
        self.media = media
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        ws = self.media.ws
        assert ws is not None
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            event = json.loads(msg.data)
            self.events.append(event)
            if event.get("event") == "mark":  # played at once: echo it as Twilio does
                name = event["mark"]["name"]
                mark = {"event": "mark", "streamSid": self.media.stream_sid, "mark": {"name": name}}
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.media.send(mark)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def media_frames(self) -> list[bytes]:
        """Payloads of every media frame sent to the carrier, in order."""
        import base64

        return [
            base64.b64decode(e["media"]["payload"]) for e in self.events if e["event"] == "media"
        ]

    def kinds(self) -> list[str]:
        return [e["event"] for e in self.events]


class ScriptedAgent:
    """An agent runner answering each caller turn with the next scripted line ("" = silence)."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)

    async def run(self, request: RunRequest) -> RunResult:
        text = self.replies.pop(0) if self.replies else ""
        return RunResult([Payload(json.dumps({"spoken": text}))])


class FailingLongTts(FakeElevenLabsTts):
    """An ElevenLabs fake that fails every synthesis except the short apology."""

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.fail_status = None if body.get("text") == APOLOGY else 500
        return await super()._stream(request)


OTHER_AUDIO = b"\x30" * 160 * 20


@dataclass
class PerTextTts(FakeElevenLabsTts):
    """An ElevenLabs fake whose audio depends on the text, so frames tell utterances apart."""

    by_text: dict[str, bytes] = field(default_factory=dict)

    async def stream_audio(self, request: web.Request) -> web.StreamResponse:
        text = (await request.json())["text"]
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        await response.write(self.by_text.get(text, OTHER_AUDIO))
        await response.write_eof()
        return response


Setup = Callable[..., Any]


@pytest.fixture
async def speaking(tmp_path: Any) -> AsyncIterator[Setup]:
    """Builds a twilio gateway with streaming STT and TTS pointed at fakes."""
    stack: list[Any] = []

    async def make(
        script: list[str],
        *,
        tts: FakeElevenLabsTts | None = None,
        runner: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[Harness, FakeElevenLabsTts]:
        stt = FakeDeepgram(script, api_key="stt-key")
        stt_key = "stt-key"
        await stt.__aenter__()
        stack.append(stt.__aexit__)
        fake_tts = tts or FakeElevenLabsTts(audio=REPLY_AUDIO, chunk_bytes=400)
        await fake_tts.__aenter__()
        stack.append(fake_tts.__aexit__)
        twilio = StreamingTwilio("AC" + "0" * 31 + "1", "fake-auth-token")
        await twilio.start()
        stack.append(lambda *_: twilio.close())
        raw = gateway_config(twilio, stt.base_url, "deepgram")
        raw["streaming"]["providers"]["deepgram"]["apiKey"] = stt_key
        raw["tts"] = {
            "provider": "elevenlabs",
            "providers": {
                "elevenlabs": {
                    "apiKey": API_KEY,
                    "baseUrl": fake_tts.base_url,
                    "voiceId": "VOICE123",
                    "modelId": "eleven_multilingual_v2",
                }
            },
        }
        raw.update(extra or {})
        gateway = Gateway(
            VoicecallConfig.model_validate(raw),
            env={"VOICECALL_HOME": str(tmp_path)},
            runner=runner,
        )
        await gateway.start()
        stack.append(lambda *_: gateway.stop())
        session = aiohttp.ClientSession()
        stack.append(lambda *_: session.close())
        return Harness(gateway, twilio, stt, session), fake_tts

    yield make
    for close in reversed(stack):
        await close(None, None, None)


def tts_texts(fake: FakeElevenLabsTts) -> list[str]:
    """The texts the gateway asked the fake TTS to say."""
    return [r.body["text"] for r in fake.requests]


def bot_lines(h: Harness, sid: str) -> list[str]:
    return [e.text for e in h.record(sid).transcript if e.speaker == "bot"]


def user_lines(h: Harness, sid: str) -> list[str]:
    return [e.text for e in h.record(sid).transcript if e.speaker == "user"]


def twiml_updates(h: Harness, sid: str) -> list[Any]:
    return [r for r in h.twilio.rest_for(sid) if "Twiml" in dict(r.form)]


async def test_greeting_plays_on_the_stream_once_stt_is_ready(speaking: Setup) -> None:
    """The greeting is synthesized and heard as paced µ-law frames plus a mark, after STT ready."""
    h, tts = await speaking([])
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        phone = Phone(media)
        phone.start()
        await media.start(sid, doc.token)
        await h.until(lambda: "media" in phone.kinds())
        talk = [e["type"] for e in h.record(sid).metadata["recentTalkEvents"]]
        assert "session.started" in talk  # transcription was ready before the first frame
        await h.until(lambda: "initialMessage" not in h.record(sid).metadata)
        await phone.stop()
    assert tts_texts(tts) == [GREETING]
    sent = phone.media_frames()
    assert all(len(f) == 160 for f in sent)
    assert REPLY_AUDIO[:160] in sent
    assert "mark" in phone.kinds()
    assert bot_lines(h, sid) == [GREETING]
    assert h.record(sid).state == "listening"
    assert twiml_updates(h, sid) == []


async def test_caller_turn_gets_a_spoken_reply_with_turn_metrics(speaking: Setup) -> None:
    """Caller speech → transcript → agent reply → TTS → frames at the carrier, timed per turn."""
    h, tts = await speaking(["I need a table for two."])
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        phone = Phone(media)
        phone.start()
        await media.start(sid, doc.token)
        await h.until(lambda: "initialMessage" not in h.record(sid).metadata)
        await media.play(frames(speech("hello")))
        await h.until(lambda: len(tts_texts(tts)) == 2)
        await h.until(lambda: any("firstFrameAt" in t for t in h.record(sid).metadata["turns"]))
        marks_before = phone.kinds().count("mark")
        await h.until(lambda: h.record(sid).state == "listening")
        await phone.stop()
    reply = tts_texts(tts)[1]
    assert bot_lines(h, sid) == [GREETING, reply]
    assert "table for two" in reply.lower()
    assert marks_before >= 2
    turn = next(t for t in h.record(sid).metadata["turns"] if t["kind"] == "auto")
    assert turn["startedAt"] <= turn["replyAt"] <= turn["firstAudioAt"] <= turn["firstFrameAt"]
    assert turn["completedAt"] == turn["firstFrameAt"]
    assert turn["responseMs"] == turn["firstFrameAt"] - turn["startedAt"]
    assert twiml_updates(h, sid) == []


async def test_speak_on_a_streamed_call_plays_on_the_stream(speaking: Setup) -> None:
    """voicecall.speak returns once the stream played it, and posts no TwiML update."""
    h, tts = await speaking([])
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        phone = Phone(media)
        phone.start()
        await media.start(sid, doc.token)
        await h.until(lambda: "initialMessage" not in h.record(sid).metadata)
        before = len(phone.media_frames())
        runtime: Any = h.gateway.runtime
        result = await runtime.speak(h.record(sid).call_id, "Your table is booked.")
        await phone.stop()
    assert result == {"success": True}
    assert tts_texts(tts)[-1] == "Your table is booked."
    assert len(phone.media_frames()) > before
    assert bot_lines(h, sid)[-1] == "Your table is booked."
    assert twiml_updates(h, sid) == []


async def test_barge_in_mid_reply_clears_it_and_cuts_the_bot_line(speaking: Setup) -> None:
    """Caller speech mid-reply: the carrier gets clear, no more of that reply, and a cut line."""
    long_reply = " ".join(["I can book the table for seven, or eight if you prefer."] * 6)
    long_audio = REPLY_AUDIO * 30  # ~13 s: still playing when the caller speaks
    tts = FakeElevenLabsTts(audio=long_audio, chunk_bytes=4000)
    h, _ = await speaking(
        ["I need a table.", "Wait, stop."], tts=tts, runner=ScriptedAgent([long_reply, ""])
    )
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        phone = Phone(media)
        phone.start()
        await media.start(sid, doc.token)
        await h.until(lambda: "initialMessage" not in h.record(sid).metadata)
        first = frames(speech("hello") + SILENCE)
        await media.play(first)
        await h.until(lambda: long_reply in bot_lines(h, sid))
        await h.until(lambda: sum(1 for e in phone.events if e["event"] == "mark") >= 4)
        await media.play(frames(speech("hello"), first_chunk=len(first) + 1))
        await h.until(lambda: "clear" in phone.kinds())
        await h.until(lambda: user_lines(h, sid) == ["I need a table.", "Wait, stop."])
        await h.until(lambda: long_reply not in bot_lines(h, sid))
        runtime: Any = h.gateway.runtime
        await runtime.wait_idle()
        await phone.stop()
    after_clear = phone.kinds()[phone.kinds().index("clear") + 1 :]
    assert "media" not in after_clear
    cut = bot_lines(h, sid)[-1]
    assert long_reply.startswith(cut) and 0 < len(cut) < len(long_reply)
    assert h.record(sid).ended_at_ms is None


async def test_tts_failure_is_answered_with_an_apology_and_the_call_goes_on(
    speaking: Setup,
) -> None:
    """When synthesis fails the caller hears the apology, and the conversation continues."""
    tts = FailingLongTts(audio=REPLY_AUDIO, chunk_bytes=400)
    h, _ = await speaking(["Are you there?"], tts=tts)
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        phone = Phone(media)
        phone.start()
        await media.start(sid, doc.token)
        await h.until(lambda: tts_texts(tts).count(APOLOGY) == 1)
        await h.until(lambda: REPLY_AUDIO[:160] in phone.media_frames())
        await media.play(frames(speech("hello")))
        await h.until(lambda: tts_texts(tts).count(APOLOGY) == 2)
        await h.until(lambda: phone.kinds().count("mark") >= 2)
        await phone.stop()
    assert tts_texts(tts)[0] == GREETING
    assert user_lines(h, sid) == ["Are you there?"]
    record = h.record(sid)
    assert record.ended_at_ms is None and record.state == "listening"
    # The transcript says what the caller heard: the apologies, not the unspoken lines.
    await h.until(lambda: bot_lines(h, sid) == [APOLOGY, APOLOGY])
    lines = [(e.speaker, e.text) for e in h.record(sid).transcript]
    assert lines == [("bot", APOLOGY), ("user", "Are you there?"), ("bot", APOLOGY)]


class FailingAgent:
    """An agent runner whose model call fails outright."""

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, request: RunRequest) -> RunResult:
        self.runs += 1
        raise ConnectionError("model endpoint refused the connection")


class HangingAgent:
    """An agent runner whose model never answers (the gateway's timeout must end the run)."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def run(self, request: RunRequest) -> RunResult:
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled.set()
        raise AssertionError("unreachable")


@pytest.mark.parametrize("failure", ["error", "timeout"])
async def test_model_failure_is_answered_with_a_spoken_apology(
    speaking: Setup, failure: str
) -> None:
    """The model fails or times out: the caller hears the apology on the stream, not silence,
    it is the bot's line, and the conversation goes on with the next caller turn."""
    runner: Any = FailingAgent() if failure == "error" else HangingAgent()
    sorry_audio = b"\x55" * 160 * 10
    h, tts = await speaking(
        ["What time is it?", "Hello?"],
        tts=PerTextTts(by_text={REPLY_APOLOGY: sorry_audio}),
        runner=runner,
        extra={"responseTimeoutMs": 400},
    )
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        phone = Phone(media)
        phone.start()
        await media.start(sid, doc.token)
        await h.until(lambda: "initialMessage" not in h.record(sid).metadata)
        first = frames(speech("hello") + SILENCE)
        await media.play(first)
        await h.until(lambda: REPLY_APOLOGY in tts_texts(tts))
        await h.until(lambda: bot_lines(h, sid) == [GREETING, REPLY_APOLOGY])
        await h.until(lambda: h.record(sid).state == "listening")
        assert phone.media_frames().count(sorry_audio[:160]) == 10  # heard in full
        await media.play(frames(speech("hello"), first_chunk=len(first) + 1))
        await h.until(lambda: tts_texts(tts).count(REPLY_APOLOGY) == 2)
        await h.until(lambda: bot_lines(h, sid) == [GREETING, REPLY_APOLOGY, REPLY_APOLOGY])
        await h.until(lambda: h.record(sid).state == "listening")
        await phone.stop()
    assert phone.media_frames().count(sorry_audio[:160]) == 20
    assert user_lines(h, sid) == ["What time is it?", "Hello?"]
    if isinstance(runner, HangingAgent):
        assert runner.cancelled.is_set()  # the timed-out run was cancelled, not left running
    else:
        assert runner.runs == 2
    record = h.record(sid)
    assert record.ended_at_ms is None
    assert all(t["kind"] != "auto" for t in record.metadata.get("turns", []))
    assert twiml_updates(h, sid) == []
