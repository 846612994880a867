"""Telnyx media streams into a live gateway: fake Telnyx streams speech, fake Deepgram hears it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.fakes.stt_common import API_KEY
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.fakes.telnyx import FakeTelnyx
from tests.streaming.conftest import streaming_config
from tests.streaming.media import speech

from voicecall.calls.record import CallRecord
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway

OUR_NUMBER = "+15550001111"
FRIEND = "+15550003333"
CALLEE = "+15550002222"
GREETING = "Hi, thanks for calling."
LINE = "Hello, thanks for calling."


class Harness:
    """An in-process gateway on provider telnyx with streaming through the fake Deepgram."""

    def __init__(self, gateway: Gateway, telnyx: FakeTelnyx, stt: FakeDeepgram) -> None:
        self.gateway = gateway
        self.telnyx = telnyx
        self.stt = stt
        self.session = aiohttp.ClientSession()

    @property
    def runtime(self) -> Any:
        assert self.gateway.runtime is not None
        return self.gateway.runtime

    def record(self, ccid: str) -> CallRecord:
        """The gateway's record of Telnyx call ``ccid`` (live or ended)."""
        record = self.runtime.find_by_provider_id(ccid)
        assert record is not None
        live = self.runtime.get_record(record.call_id)
        return live if live is not None else record  # type: ignore[no-any-return]

    async def until(self, predicate: Any, timeout_s: float = 30) -> None:
        """Wait until ``predicate()`` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.02)

    async def inbound_call(self) -> str:
        """A caller from the allowlist dials in; returns its call_control_id once streaming."""
        ccid = self.telnyx.place_inbound_call(from_number=FRIEND, to_number=OUR_NUMBER)
        await self.telnyx.stream_url(ccid)
        return ccid


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running gateway, fake Telnyx and fake Deepgram (scripted with one caller line)."""
    async with FakeDeepgram([LINE], api_key=API_KEY) as stt:
        telnyx = FakeTelnyx()
        await telnyx.start()
        telnyx_keys = {
            "apiKey": telnyx.api_key,
            "connectionId": telnyx.connection_id,
            "publicKey": telnyx.public_key_b64,
            "apiBaseUrl": telnyx.base_url,
        }
        carrier = {"provider": "telnyx", "fromNumber": OUR_NUMBER, "telnyx": telnyx_keys}
        raw = streaming_config(carrier, stt.base_url, friend=FRIEND, greeting=GREETING)
        gateway = Gateway(
            VoicecallConfig.model_validate(raw), env={"VOICECALL_HOME": str(tmp_path)}
        )
        await gateway.start()
        telnyx.connection_webhook_url = gateway.webhook_url
        h = Harness(gateway, telnyx, stt)
        try:
            yield h
        finally:
            await h.session.close()
            await gateway.stop()
            await telnyx.close()


def user_lines(record: CallRecord) -> list[str]:
    """The caller's final transcript lines of a record."""
    return [e.text for e in record.transcript if e.speaker == "user" and e.is_final]


async def test_inbound_caller_utterance_becomes_final_user_transcript(harness: Harness) -> None:
    """An answered inbound call streams over Telnyx and the caller's speech ends as a transcript."""
    h = harness
    ccid = await h.inbound_call()
    call = h.telnyx.calls[ccid]
    assert call.stream_url is not None and "/voice/stream/" in call.stream_url
    async with h.telnyx.media_stream(ccid, h.session) as media:
        await media.start()
        await media.play(speech("hello"))
        await h.until(lambda: user_lines(h.record(ccid)) == [LINE])
    record = h.record(ccid)
    assert next(e.text for e in record.transcript if e.speaker == "bot") == GREETING
    assert "transcription_start" not in h.telnyx.actions(ccid)  # no classic listen turns
    assert not h.stt.problems


async def test_outbound_conversation_streams_after_pre_connect_dtmf(harness: Harness) -> None:
    """An outbound conversation plays its pre-connect digits, then starts the media stream."""
    h = harness
    result = await h.runtime.initiate(
        to=CALLEE, message="Hello there.", mode="conversation", dtmf_sequence="12"
    )
    record = h.runtime.get_record(result["callId"])
    ccid = record.provider_call_id
    await h.telnyx.stream_url(ccid)
    actions = h.telnyx.actions(ccid)
    assert actions.index("send_dtmf") < actions.index("streaming_start")
    assert h.telnyx.calls[ccid].dtmf_sent == ["12"]
    async with h.telnyx.media_stream(ccid, h.session) as media:
        await media.start()
        await media.play(speech("hello"))
        await h.until(lambda: user_lines(h.record(ccid)) == [LINE])


async def test_a_bad_token_is_refused(harness: Harness) -> None:
    """A media socket whose path token is not the call's is closed with 1008, the call lives."""
    h = harness
    ccid = await h.inbound_call()
    url = h.telnyx.calls[ccid].stream_url
    assert url is not None
    forged = url.rpartition("/")[0] + "/not-the-token"
    async with h.telnyx.media_stream(ccid, h.session, url=forged) as media:
        await media.start()
        assert await media.closed() == (1008, "Unauthorized stream")
    assert h.record(ccid).ended_at_ms is None


async def test_streaming_failed_ends_the_call_after_the_grace(harness: Harness) -> None:
    """When Telnyx reports the stream failed and no stream comes back, the call ends."""
    h = harness
    ccid = await h.inbound_call()
    async with h.telnyx.media_stream(ccid, h.session) as media:
        await media.start()
        await h.until(lambda: h.runtime.current_stream_id(h.record(ccid).call_id) is not None)
        h.telnyx.stream_fails(ccid)
        await h.until(lambda: h.record(ccid).ended_at_ms is not None)
    assert h.record(ccid).end_reason == "hangup-bot"
    assert "hangup" in h.telnyx.actions(ccid)


async def test_a_stream_reconnecting_after_streaming_failed_keeps_the_call(
    harness: Harness,
) -> None:
    """A stream that reconnects within the grace after ``streaming.failed`` keeps the call up."""
    h = harness
    ccid = await h.inbound_call()
    call_id = h.record(ccid).call_id
    h.telnyx.stream_fails(ccid)  # before any stream connected
    await h.until(lambda: any(d.event_type == "streaming.failed" for d in h.telnyx.deliveries))
    async with h.telnyx.media_stream(ccid, h.session) as media:
        await media.start()
        await h.until(lambda: h.runtime.current_stream_id(call_id) == media.stream_id)
        await asyncio.sleep(2.5)  # longer than the grace
        assert h.record(ccid).ended_at_ms is None
        await media.play(speech("hello"))
        await h.until(lambda: user_lines(h.record(ccid)) == [LINE])
