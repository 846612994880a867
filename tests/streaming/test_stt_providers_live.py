"""Live caller audio over Twilio into every streaming transcription provider's fake."""

from __future__ import annotations

import pytest
from tests.streaming.conftest import GREETING, Harness, MakeHarness
from tests.streaming.media import frames, speech

from voicecall.calls.record import CallRecord

PROVIDERS = ["openai", "deepgram", "elevenlabs", "mistral", "xai"]
UTTERANCE = "Hello, thanks for calling."


def user_lines(record: CallRecord) -> list[str]:
    """The caller's final transcript lines of a record."""
    return [e.text for e in record.transcript if e.speaker == "user" and e.is_final]


def bot_lines(record: CallRecord) -> list[str]:
    """What the gateway recorded as said to the caller."""
    return [e.text for e in record.transcript if e.speaker == "bot"]


def talk_events(h: Harness, sid: str) -> list[str]:
    """The kinds mirrored into ``recentTalkEvents``."""
    return [e["type"] for e in h.record(sid).metadata.get("recentTalkEvents", [])]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_caller_utterance_ends_as_final_user_transcript(
    make_harness: MakeHarness, provider: str
) -> None:
    """Speech streamed at real-time pace ends as the caller's final transcript, on disk too."""
    h = await make_harness(provider, script=[UTTERANCE])
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await media.play(frames(speech("hello")))
        await h.until(lambda: user_lines(h.record(sid)) == [UTTERANCE])
    record = h.record(sid)
    assert record.ended_at_ms is None
    await h.until(
        lambda: any(
            t["speaker"] == "user" and t["text"] == UTTERANCE
            for t in h.persisted(record.call_id)[-1]["transcript"]
        )
    )
    assert not h.stt.problems


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_greeting_waits_for_the_provider_to_be_ready(
    make_harness: MakeHarness, provider: str
) -> None:
    """Nothing is said while the provider connects; audio sent meanwhile is still transcribed."""
    h = await make_harness(provider, script=[UTTERANCE])
    h.stt.release_ready.clear()  # the fake holds its handshake / session-ready message
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        await h.until(lambda: h.stt.attempts >= 1)
        for frame in frames(speech("hello")):  # a burst, queued while connecting
            await media.media(frame)
        assert bot_lines(h.record(sid)) == []
        assert "session.started" not in talk_events(h, sid)
        h.stt.release_ready.set()
        await h.until(lambda: user_lines(h.record(sid)) == [UTTERANCE])
    record = h.record(sid)
    assert bot_lines(record)[0] == GREETING
    assert "session.started" in talk_events(h, sid)
    assert not h.stt.problems


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_provider_refusing_the_key_ends_the_call_with_an_error(
    make_harness: MakeHarness, provider: str
) -> None:
    """A provider that refuses the API key closes the stream with 1011 and ends the call."""
    h = await make_harness(provider, stt_api_key="another-key")
    sid, doc = await h.inbound_call()
    call_id = h.record(sid).call_id
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        assert await media.closed() == (1011, "STT connection failed")
    runtime = h.gateway.runtime
    assert runtime is not None
    await h.until(lambda: runtime.get_record(call_id).ended_at_ms is not None)
    record = runtime.get_record(call_id)
    assert record.end_reason == "error"
    assert bot_lines(record) == []  # the greeting never started
