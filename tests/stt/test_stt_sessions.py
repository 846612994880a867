"""Every provider's session against its fake server: transcripts, queueing, reconnects, auth."""

from __future__ import annotations

import logging

import pytest
from tests.fakes.stt_common import API_KEY
from tests.stt.conftest import CASES, Case, Events, audio, stream

from voicecall.stt import (
    FinalTranscript,
    ReconnectPolicy,
    SessionReady,
    SpeechStarted,
    create_stt_session,
)

# Short reconnect delay so the policy's attempt counting runs quickly; the limits are the SPEC's.
FAST = ReconnectPolicy(reconnect_delay_s=0.02)

cases = pytest.mark.parametrize("case", CASES, ids=lambda c: c.provider)


@cases
async def test_recorded_speech_yields_the_scripted_finals(case: Case) -> None:
    """Two recorded utterances become two final transcripts, after ready and speech-start."""
    texts = ["Yes.", "That works for me."]
    async with case.fake(texts) as fake:
        events = Events()
        session = create_stt_session(case.config(fake), None, on_event=events, env={})
        await session.start()
        await events.wait_for(lambda e: bool(e.readies))
        await stream(session.send_audio, audio("two_utterances"))
        await events.wait_for(lambda e: len(e.finals) == 2)
        await session.aclose()
    assert events.finals == texts
    assert isinstance(events.items[0], SessionReady)
    assert events.speech_starts >= 2
    first_speech = next(i for i, e in enumerate(events.items) if isinstance(e, SpeechStarted))
    first_final = next(i for i, e in enumerate(events.items) if isinstance(e, FinalTranscript))
    assert first_speech < first_final
    assert not events.errors
    assert fake.problems == []
    assert fake.audio == audio("two_utterances")


@cases
async def test_close_delivers_the_last_utterance(case: Case) -> None:
    """Audio cut off mid-utterance still yields its final transcript when the session closes."""
    speech = audio("hello")[: 8 * 1500]  # 1.5 s: the speaker is still talking
    async with case.fake(["Hello, thanks for calling."]) as fake:
        events = Events()
        session = create_stt_session(case.config(fake), None, on_event=events, env={})
        await session.start()
        await events.wait_for(lambda e: bool(e.readies))
        await stream(session.send_audio, speech)
        await events.wait_for(lambda e: bool(e.partials))
        await session.aclose()
    assert events.finals == ["Hello, thanks for calling."]
    assert fake.problems == []


@cases
async def test_audio_sent_while_connecting_arrives_in_order(case: Case) -> None:
    """Audio sent before the provider is ready is queued and delivered whole, in order."""
    clip = audio("hello")
    async with case.fake(["Hello, thanks for calling."]) as fake:
        fake.release_ready.clear()
        events = Events()
        session = create_stt_session(case.config(fake), None, on_event=events, env={})
        await session.start()
        await stream(session.send_audio, clip)
        assert not session.ready and not events.readies
        fake.release_ready.set()
        await events.wait_for(lambda e: bool(e.finals))
        await session.aclose()
    assert events.finals == ["Hello, thanks for calling."]
    assert fake.audio == clip
    assert fake.problems == []


@cases
async def test_dropped_connection_reconnects_and_keeps_transcribing(case: Case) -> None:
    """A connection lost between utterances is reopened and the next utterance is transcribed."""
    texts = ["Yes.", "That works for me."]
    # 1.75 s into the clip: after "Yes." ended, before "That works for me." starts.
    async with case.fake(texts, drop_after_bytes=14_000) as fake:
        events = Events()
        config = case.config(fake)
        session = create_stt_session(config, None, on_event=events, env={}, policy=FAST)
        await session.start()
        await events.wait_for(lambda e: bool(e.readies))
        await stream(session.send_audio, audio("two_utterances"))
        await events.wait_for(lambda e: len(e.finals) == 2)
        await session.aclose()
    assert events.finals == texts
    assert [r.reconnected for r in events.readies] == [False, True]
    assert len(fake.connections) == 2
    assert not events.errors
    assert fake.problems == []


@cases
async def test_dead_provider_ends_in_a_fatal_error(case: Case) -> None:
    """After the connection drops and every reconnect is refused, one fatal error is reported."""
    async with case.fake(["Yes."], drop_after_bytes=1_600, refuse_after=1) as fake:
        events = Events()
        session = create_stt_session(case.config(fake), None, on_event=events, env={}, policy=FAST)
        await session.start()
        await events.wait_for(lambda e: bool(e.readies))
        await stream(session.send_audio, audio("goodbye"))
        await events.wait_for(lambda e: bool(e.errors))
        session.send_audio(b"\xff" * 160)  # ignored: the session is over
        await session.aclose()
    [error] = events.errors
    assert error.fatal
    assert case.provider in error.message
    assert "5 reconnect attempts" in error.message
    assert fake.attempts == 1 + FAST.max_reconnects
    assert session.failed


@cases
async def test_rejected_key_is_a_clear_fatal_error_without_retries(case: Case) -> None:
    """A wrong API key ends the session at once with an error that says so."""
    async with case.fake(["Yes."], api_key="the-right-key") as fake:
        events = Events()
        session = create_stt_session(case.config(fake), None, on_event=events, env={}, policy=FAST)
        await session.start()
        await events.wait_for(lambda e: bool(e.errors))
        await session.aclose()
    [error] = events.errors
    assert error.fatal
    assert case.provider in error.message
    assert "api key" in error.message.lower()
    assert fake.attempts == 1
    assert not events.readies


@cases
async def test_no_key_reaches_the_logs_even_at_debug(
    case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    """websockets logs every handshake header at DEBUG: the key must show as *** only."""
    caplog.set_level(logging.DEBUG)
    async with case.fake(["Hi."]) as fake:
        events = Events()
        session = create_stt_session(case.config(fake), None, on_event=events, env={})
        await session.start()
        await events.wait_for(lambda e: bool(e.readies))
        await session.aclose()
    # The fake provider's own server logs what it received; only our side is checked.
    ours = [r for r in caplog.records if not r.name.startswith("websockets.server")]
    messages = [record.getMessage() for record in ours]
    assert any(m.startswith("> GET ") for m in messages)  # the handshake was logged...
    assert not [m for m in messages if API_KEY in m]  # ...without the key
