"""Barge-in (SPEC §2.8): caller speech while the bot speaks stops its audio, except the greeting."""

from __future__ import annotations

import json

from tests.streaming.media import frames, speech
from tests.streaming.test_playback import (
    Sink,
    VirtualClock,
    _audio,
    _chunks,
    _engine,
    _protocol,
)

from voicecall.calls.record import CallRecord
from voicecall.streaming.bargein import BargeIn
from voicecall.streaming.playback import FRAME_S, LEAD_FRAMES, PlaybackStatus
from voicecall.streaming.session import CallStream
from voicecall.stt import PartialTranscript, SpeechStarted


class _Control:
    """The call runtime as a stream sees it, for one current stream."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.events: list[dict[str, object]] = []

    def find_by_provider_id(self, provider_call_id: str) -> CallRecord | None:
        return None

    def current_stream_id(self, call_id: str) -> str | None:
        return self.stream_id

    async def stream_connected(self, call_id: str, stream_id: str) -> None:
        return None

    async def stream_disconnected(self, call_id: str, stream_id: str) -> None:
        return None

    async def stream_ready(self, call_id: str, stream_id: str) -> str | None:
        return None

    async def handle_events(
        self, events: list[dict[str, object]], *, in_band_rejection: bool = False
    ) -> None:
        self.events.extend(events)

    def talk_event(self, call_id: str, kind: str) -> None:
        return None


async def _fail(code: int, reason: str) -> None:
    return None


def _stream(direction: str, sink: Sink, clock: VirtualClock) -> CallStream:
    """A CallStream whose playback writes to ``sink`` on ``clock``."""
    record = CallRecord.model_validate(
        {
            "callId": "call-1",
            "providerCallId": "CA1",
            "provider": "twilio",
            "direction": direction,
            "state": "active",
            "from": "+15550001000",
            "to": "+15550002222",
            "startedAt": 0,
        }
    )
    stream = CallStream(
        record=record,
        stream_id="MZ1",
        protocol=_protocol(),
        control=_Control("MZ1"),
        clock_ms=lambda: 0,
        fail=_fail,
        send_frame=sink,
    )
    stream.playback._clock = clock  # the test clock drives the pacer
    return stream


async def test_vad_speech_start_while_the_bot_speaks_clears_the_playback() -> None:
    """A VAD speech-start from the caller's audio sends clear and interrupts the reply."""
    sink, clock = Sink(), VirtualClock()
    stream = _stream("inbound", sink, clock)
    item = stream.playback.enqueue(_chunks(_audio(200)), "a long reply")
    await clock.advance(0.2)
    for frame in frames(speech("hello")):  # the recorded caller, through the real pump + VAD
        media = {"track": "inbound", "chunk": str(frame.chunk), "payload": frame.payload}
        media["timestamp"] = str(frame.timestamp_ms)
        stream.pump.feed(json.dumps({"event": "media", "streamSid": "MZ1", "media": media}))
        if item.done:
            break
    assert sink.events()[-1] == "clear"
    assert item.result().status is PlaybackStatus.INTERRUPTED
    assert stream.barge_in.interruptions == 1


async def test_stt_partial_and_speech_start_trigger_barge_in_and_cancel_the_reply() -> None:
    """An STT speech-start or partial clears the audio and fires the reply-cancel hook."""
    sink, clock = Sink(), VirtualClock()
    stream = _stream("inbound", sink, clock)
    cancelled: list[int] = []
    stream.barge_in.on_barge_in.append(lambda: cancelled.append(stream.barge_in.generation))
    first = stream.playback.enqueue(_chunks(_audio(200)), "first reply")
    await clock.advance(0.1)
    stream._on_stt_event(PartialTranscript("wait"))
    assert first.result().status is PlaybackStatus.INTERRUPTED
    second = stream.playback.enqueue(_chunks(_audio(200)), "second reply")
    await clock.advance(0.1)
    stream._on_stt_event(SpeechStarted())
    assert second.result().status is PlaybackStatus.INTERRUPTED
    assert sink.events().count("clear") == 2
    assert cancelled == [1, 2]
    await stream.close()


async def test_barge_in_is_suppressed_while_an_outbound_greeting_plays() -> None:
    """On an outbound call the greeting plays through caller speech; the next reply does not."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    barge_in = BargeIn(playback, outbound=True)
    greeting = playback.enqueue(_chunks(_audio(50)), "Hello, this is the bot", greeting=True)
    await clock.advance(0.2)
    assert barge_in.caller_spoke("vad") is False
    await clock.advance(1.5)
    assert "clear" not in sink.events()
    playback.on_mark(greeting.item_id)
    assert greeting.result().status is PlaybackStatus.PLAYED
    reply = playback.enqueue(_chunks(_audio(50)), "A reply")
    await clock.advance(0.2)
    assert barge_in.caller_spoke("stt-partial") is True
    assert reply.result().status is PlaybackStatus.INTERRUPTED


async def test_an_inbound_greeting_can_be_interrupted() -> None:
    """Inbound calls always allow barge-in, even during the greeting."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    barge_in = BargeIn(playback, outbound=False)
    greeting = playback.enqueue(_chunks(_audio(50)), "Hello!", greeting=True)
    await clock.advance(0.2)
    assert barge_in.caller_spoke("vad") is True
    assert greeting.result().status is PlaybackStatus.INTERRUPTED


async def test_heard_accounting_after_a_barge_in_cuts_the_bot_line() -> None:
    """After a barge-in the result reports frames heard (acked) vs sent and the heard text."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock, progress_mark_frames=25)
    barge_in = BargeIn(playback, outbound=False)
    text = "I can book the table for seven, or would eight work better for you tonight"
    item = playback.enqueue(_chunks(_audio(200)), text)
    await clock.advance(60 * FRAME_S)
    playback.on_mark(f"{item.item_id}#50")  # the carrier has played one second of it
    barge_in.caller_spoke("stt-partial")
    result = item.result()
    assert result.frames_sent == 60 + LEAD_FRAMES + 1
    assert result.frames_heard == 50
    assert text.startswith(result.heard_text)
    assert 0 < len(result.heard_text) < len(text)


async def test_caller_speech_when_the_bot_is_silent_sends_no_clear_but_cancels_the_reply() -> None:
    """Speech with nothing playing sends nothing to the carrier yet still invalidates a reply."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    barge_in = BargeIn(playback, outbound=False)
    hooks: list[str] = []
    barge_in.on_barge_in.append(lambda: hooks.append("cancel"))
    assert barge_in.caller_spoke("vad") is False
    assert sink.frames == [] and hooks == ["cancel"] and barge_in.generation == 1
