"""Plivo audio streams into a live gateway: the fake Plivo streams speech, Deepgram transcribes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.plivo import FakeCall, FakePlivo, PlivoAudioStream
from tests.fakes.stt_common import API_KEY, FakeSttServer
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.streaming.conftest import streaming_config

from voicecall.calls.record import CallRecord
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway
from voicecall.media import Resampler, ulaw_to_pcm16

DATA = Path(__file__).resolve().parents[1] / "data"
FROM = "+15550001000"
FRIEND = "+15550002222"
GREETING = "Hi friend, how can I help?"
UTTERANCE = "Hello, thanks for calling."


@dataclass
class PlivoHarness:
    """A running gateway on provider plivo with streaming, the fake Plivo and fake Deepgram."""

    gateway: Gateway
    plivo: FakePlivo
    stt: FakeSttServer
    session: aiohttp.ClientSession

    def dial_in(self) -> FakeCall:
        """A caller from the allowlist dials in; Plivo fetches the answer XML."""
        url = self.gateway.webhook_url
        assert url is not None
        answer = f"{url}?provider=plivo&flow=answer"
        hangup = f"{url}?provider=plivo&flow=hangup"
        return self.plivo.dial_in(
            from_number=FRIEND, to_number=FROM, answer_url=answer, hangup_url=hangup
        )

    def record(self, call: FakeCall) -> CallRecord:
        """The gateway's record of the fake call."""
        runtime: Any = self.gateway.runtime
        record = runtime.find_by_provider_id(call.call_uuid)
        assert record is not None
        return record  # type: ignore[no-any-return]

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 30) -> None:
        """Wait until ``predicate()`` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.02)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[PlivoHarness]:
    """The gateway, fake Plivo (no retries, so one answer fetch) and fake Deepgram."""
    async with (
        FakeDeepgram([UTTERANCE], api_key=API_KEY) as stt,
        FakePlivo(duplicate_every=0, late_every=0) as plivo,
        aiohttp.ClientSession() as session,
    ):
        plivo_keys = {
            "authId": plivo.auth_id,
            "authToken": plivo.auth_token,
            "apiBaseUrl": plivo.api_base_url,
        }
        carrier = {"provider": "plivo", "fromNumber": FROM, "plivo": plivo_keys}
        raw = streaming_config(carrier, stt.base_url, friend=FRIEND, greeting=GREETING)
        gateway = Gateway(
            VoicecallConfig.model_validate(raw), env={"VOICECALL_HOME": str(tmp_path)}
        )
        await gateway.start()
        try:
            yield PlivoHarness(gateway, plivo, stt, session)
        finally:
            await plivo.aclose_calls()
            await gateway.stop()


def user_lines(record: CallRecord) -> list[str]:
    """The caller's final transcript lines."""
    return [e.text for e in record.transcript if e.speaker == "user" and e.is_final]


async def test_streamed_speech_becomes_final_user_transcript(harness: PlivoHarness) -> None:
    """Speech the fake Plivo streams over its <Stream> socket ends as the caller's transcript."""
    call = harness.dial_in()
    url = await harness.plivo.stream_of(call)
    assert url.startswith("ws://127.0.0.1:") and "/voice/stream/" in url
    assert call.stream_attrs["bidirectional"] == "true"
    async with harness.plivo.audio_stream(call, session=harness.session) as media:
        await media.start()
        await media.play((DATA / "hello.ulaw").read_bytes())
        await harness.until(lambda: user_lines(harness.record(call)) == [UTTERANCE])
    record = harness.record(call)
    assert next(e.text for e in record.transcript if e.speaker == "bot") == GREETING
    assert not harness.stt.problems


async def test_a_wrong_token_is_refused(harness: PlivoHarness) -> None:
    """A socket whose path token is not the call's is closed 1008 ``Unauthorized stream``."""
    call = harness.dial_in()
    url = await harness.plivo.stream_of(call)
    forged = url.rpartition("/")[0] + "/not-the-token"
    async with harness.plivo.audio_stream(call, forged, session=harness.session) as media:
        await media.start()
        assert await media.closed() == (1008, "Unauthorized stream")
    assert harness.record(call).ended_at_ms is None


async def test_a_disconnect_ends_the_call_after_the_grace(harness: PlivoHarness) -> None:
    """When the stream drops and nothing reconnects, the gateway hangs the call up."""
    call = harness.dial_in()
    await harness.plivo.stream_of(call)
    async with harness.plivo.audio_stream(call, session=harness.session) as media:
        await media.start()
        await harness.until(
            lambda: harness.record(call).metadata.get("recentTalkEvents") is not None
        )
    await harness.plivo.wait_ended(call)
    await harness.until(lambda: harness.record(call).ended_at_ms is not None)
    record = harness.record(call)
    assert record.end_reason is not None and record.end_reason.value == "hangup-bot"
    assert call.rest_hangups == 1


async def test_a_reconnect_within_the_grace_keeps_the_call(harness: PlivoHarness) -> None:
    """A new stream opened right after a drop keeps the call and still transcribes speech."""
    call = harness.dial_in()
    await harness.plivo.stream_of(call)
    async with harness.plivo.audio_stream(call, session=harness.session) as first:
        await first.start()
    async with harness.plivo.audio_stream(call, session=harness.session) as second:
        await second.start()
        await second.play((DATA / "hello.ulaw").read_bytes())
        await harness.until(lambda: user_lines(harness.record(call)) == [UTTERANCE])
        assert harness.record(call).ended_at_ms is None
    assert call.status == "in-progress" and call.rest_hangups == 0


async def _stream_paced(
    media: PlivoAudioStream, audio: bytes, chunk_bytes: int, chunk_s: float
) -> None:
    """``audio`` in ``chunk_bytes`` chunks at real-time pace (``chunk_s`` each), last one short."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    for offset in range(0, len(audio), chunk_bytes):
        await media.media(audio[offset : offset + chunk_bytes])
        due += chunk_s
        await asyncio.sleep(max(0.0, due - loop.time()))


@pytest.mark.parametrize("chunk_bytes", [320, 80], ids=["40ms", "10ms"])
async def test_speech_in_chunks_other_than_20ms_becomes_the_transcript(
    harness: PlivoHarness, chunk_bytes: int
) -> None:
    """Plivo's chunk size is unverified: 40 or 10 ms chunks reach STT unchanged, in order."""
    clip = (DATA / "hello.ulaw").read_bytes()  # 165 frames and 89 bytes
    call = harness.dial_in()
    await harness.plivo.stream_of(call)
    async with harness.plivo.audio_stream(call, session=harness.session) as media:
        await media.start()
        await _stream_paced(media, clip, chunk_bytes, chunk_bytes / 8000)
        await harness.until(lambda: user_lines(harness.record(call)) == [UTTERANCE])
        heard = harness.stt.audio
        assert heard and heard == clip[: len(heard)]  # a prefix, byte for byte
    # the close drains the partial frame the pump still held: nothing of the caller is lost
    await harness.until(lambda: harness.stt.audio == clip)
    assert not harness.stt.problems


async def test_l16_16khz_speech_becomes_the_transcript(harness: PlivoHarness) -> None:
    """A ``<Stream contentType="audio/x-l16;rate=16000">`` stream is heard as µ-law 8 kHz."""
    clip = (DATA / "hello.ulaw").read_bytes()
    upsampler = Resampler(8000, 16000)
    pcm = upsampler.process(ulaw_to_pcm16(clip)) + upsampler.flush()
    call = harness.dial_in()
    await harness.plivo.stream_of(call)
    async with harness.plivo.audio_stream(call, session=harness.session) as media:
        start = {
            "callId": media.call_uuid,
            "streamId": media.stream_id,
            "accountId": media.account_id,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000},
        }
        await media.send({"event": "start", "start": start})
        await _stream_paced(media, pcm, 640, 0.02)
        await harness.until(lambda: user_lines(harness.record(call)) == [UTTERANCE])
    await harness.until(lambda: len(harness.stt.audio) == len(clip))  # one µ-law byte per sample
    assert not harness.stt.problems
