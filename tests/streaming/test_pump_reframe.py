"""The inbound pump takes media payloads of any size, and Plivo's PCM16 (``audio/x-l16``) streams.

Plivo's inbound chunk size is unverified (protocols/plivo.md §5) and its ``<Stream>`` may
deliver PCM16 LE at 8 or 16 kHz instead of µ-law. Whatever the chunking or format, what the STT
sink receives is the caller's audio as 20 ms µ-law 8 kHz frames, in order, with nothing lost at
the end. These tests drive the real Plivo codec and the real pump (media core, jitter buffer,
VAD) frame by frame, as the server's read loop does, and look only at what comes out: the sink's
frames, the VAD callback, the garbage counts and the log.
"""

from __future__ import annotations

import array
import base64
import json
import logging
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.media.conftest import load_audioop

from voicecall.carriers.plivo.stream import PlivoStreamProtocol
from voicecall.carriers.twilio.stream import TwilioStreamProtocol
from voicecall.media import ulaw_to_pcm16
from voicecall.streaming import GarbageLog, InboundPump

DATA = Path(__file__).resolve().parents[1] / "data"
HELLO = (DATA / "hello.ulaw").read_bytes()  # 26489 bytes: 165 whole frames and 89 bytes
FRAME = 160
L16_8K = {"encoding": "audio/x-l16", "sampleRate": 8000}
L16_16K = {"encoding": "audio/x-l16", "sampleRate": 16000}


@pytest.fixture(scope="module")
def audioop() -> ModuleType:
    """CPython's classic audioop (or audioop-lts): the G.711 and rate-conversion oracle."""
    return load_audioop()


def _native(audioop: ModuleType, pcm16le: bytes) -> bytes:
    """audioop works in native byte order; our PCM16 is little-endian."""
    return pcm16le if sys.byteorder == "little" else audioop.byteswap(pcm16le, 2)


@dataclass
class Heard:
    """What came out of one stream's pump."""

    frames: list[bytes] = field(default_factory=list)
    speech_starts: int = 0

    @property
    def audio(self) -> bytes:
        return b"".join(self.frames)


class PlivoPump:
    """A Plivo stream's codec and pump, fed Plivo's JSON frames one by one."""

    def __init__(self, media_format: Any = None) -> None:
        self.heard = Heard()
        self.garbage = GarbageLog("test-stream")
        self.protocol = PlivoStreamProtocol()
        self.pump = InboundPump(
            self.protocol,
            garbage=self.garbage,
            sink=self.heard.frames.append,
            on_speech_started=self._speech_started,
        )
        self.chunk = 0
        start: dict[str, Any] = {"callId": "call-1", "streamId": "stream-1"}
        if media_format is not None:
            start["mediaFormat"] = media_format
        assert self.feed({"event": "start", "start": start}) is not None

    def _speech_started(self) -> None:
        self.heard.speech_starts += 1

    def feed(self, frame: dict[str, Any] | str) -> object:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        return self.pump.feed(text)

    def media(self, payload: bytes | str, *, chunk: int | None = None) -> None:
        """One inbound ``media`` frame (``chunk`` numbered in sending order by default)."""
        self.chunk += 1
        b64 = payload if isinstance(payload, str) else base64.b64encode(payload).decode()
        media = {
            "track": "inbound",
            "timestamp": str(1_700_000_000_000 + 20 * self.chunk),
            "chunk": self.chunk if chunk is None else chunk,
            "payload": b64,
        }
        assert self.feed({"event": "media", "streamId": "stream-1", "media": media}) is None

    def send(self, chunks: Iterable[bytes]) -> Heard:
        """Stream ``chunks``, then end the stream (``drain``, as the server does at close)."""
        for chunk in chunks:
            self.media(chunk)
        self.pump.drain()
        return self.heard


def cut(data: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    """``data`` in consecutive chunks of ``sizes`` (cycled), the last one what is left."""
    sizes = list(sizes)
    offset = index = 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        index += 1


def as_frames(data: bytes) -> list[bytes]:
    """``data`` as 160-byte frames, the last one short if ``data`` does not fill it."""
    return [data[i : i + FRAME] for i in range(0, len(data), FRAME)]


# -- µ-law in any chunk size ----------------------------------------------------------------------


def test_20ms_chunks_take_the_sequence_numbered_path() -> None:
    """160-byte chunks are played through the jitter buffer as before; nothing is re-framed."""
    stream = PlivoPump()
    audio = HELLO[: 165 * FRAME]
    heard = stream.send(cut(audio, [FRAME]))
    assert heard.frames == as_frames(audio)
    assert stream.pump.jitter_stats.received == 165
    assert stream.pump.reframed_frames == 0
    assert heard.speech_starts == 1
    assert not stream.garbage.counts


@pytest.mark.parametrize(
    "sizes",
    [[80], [320], [480], [37, 500, 1, 159, 161, 160, 160, 3], [1]],
    ids=["80", "320", "480", "irregular", "1"],
)
def test_any_chunk_size_reaches_the_sink_as_the_same_20ms_frames(sizes: list[int]) -> None:
    """The STT sink gets byte-identical frames, in order, whatever size Plivo's chunks are."""
    audio = HELLO[: 165 * FRAME]
    reference = PlivoPump().send(cut(audio, [FRAME]))
    stream = PlivoPump()
    heard = stream.send(cut(audio, sizes))
    assert heard.frames == reference.frames == as_frames(audio)
    assert heard.speech_starts == reference.speech_starts == 1  # VAD heard the same caller
    assert not stream.garbage.counts


def test_the_leftover_partial_frame_is_delivered_when_the_stream_ends() -> None:
    """Bytes short of a whole frame wait for the next chunk and are not lost at the close."""
    stream = PlivoPump()
    for chunk in cut(HELLO, [320]):  # 26489 bytes: the last 89 never fill a frame
        stream.media(chunk)
    assert stream.heard.audio == HELLO[: 165 * FRAME]  # whole frames only, so far
    stream.pump.drain()
    assert stream.heard.audio == HELLO
    assert stream.heard.frames == as_frames(HELLO)  # the tail is handed on as it is, unpadded
    stream.pump.drain()  # a second drain has nothing left to give
    assert stream.heard.audio == HELLO


def test_a_chunk_of_another_size_plays_what_the_jitter_buffer_holds_first() -> None:
    """20 ms frames that arrived out of order are put right before re-framed audio follows."""
    frames = as_frames(HELLO[: 6 * FRAME])
    stream = PlivoPump()
    stream.media(frames[0], chunk=1)
    stream.media(frames[2], chunk=3)  # one frame early: the jitter buffer reorders it
    stream.media(frames[1], chunk=2)
    stream.media(b"".join(frames[3:]), chunk=4)  # 480 bytes at once: re-framed from here on
    stream.pump.drain()
    assert stream.heard.frames == frames
    assert stream.pump.jitter_stats.received == 3
    assert stream.pump.reframed_frames == 3


def test_a_stream_of_one_20ms_frame_delivers_it_at_the_end() -> None:
    """One frame never primes the jitter buffer; ``drain`` still hands it on (and returns)."""
    stream = PlivoPump()
    heard = stream.send([HELLO[:FRAME]])
    assert heard.frames == [HELLO[:FRAME]]
    stream.pump.drain()
    assert heard.frames == [HELLO[:FRAME]]


def test_drain_returns_when_the_only_frame_is_past_a_jump() -> None:
    """A frame a whole buffer ahead of the first one, before playout began: drain still ends."""
    stream = PlivoPump()
    stream.media(HELLO[:FRAME], chunk=1)
    stream.media(HELLO[FRAME : 2 * FRAME], chunk=200)  # pushes the first out of the window
    stream.pump.drain()
    assert stream.heard.frames == []  # that one frame (20 ms) is given up
    stream.media(HELLO[:80])  # and the stream can still go on, re-framed
    stream.pump.drain()
    assert stream.heard.frames == [HELLO[:80]]


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=1200), min_size=1, max_size=40),
    length=st.integers(min_value=0, max_value=len(HELLO)),
)
def test_every_chunking_of_the_same_audio_gives_the_same_sink_bytes(
    sizes: list[int], length: int
) -> None:
    """Arbitrary chunkings (20 ms chunks mixed in included) deliver the same frames."""
    audio = HELLO[:length]
    expected = as_frames(audio)
    stream = PlivoPump()
    heard = stream.send(cut(audio, sizes))
    assert heard.frames == expected
    assert heard.speech_starts == PlivoPump().send(cut(audio, [FRAME])).speech_starts
    assert not stream.garbage.counts


# -- PCM16 (audio/x-l16) --------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [[320], [7, 333, 1, 640]], ids=["20ms", "odd-bytes"])
def test_l16_8khz_reaches_the_sink_as_ulaw_frames(audioop: ModuleType, sizes: list[int]) -> None:
    """PCM16 8 kHz is µ-law encoded (bit-exact with G.711) and framed like a µ-law stream."""
    pcm = ulaw_to_pcm16(HELLO)
    heard = PlivoPump(L16_8K).send(cut(pcm, sizes))
    oracle = audioop.lin2ulaw(_native(audioop, pcm), 2)
    assert heard.frames == as_frames(oracle)
    assert heard.speech_starts == 1


def _tone_16k(seconds: float) -> bytes:
    """440 Hz + 1 kHz, well inside the 4 kHz telephone band, as PCM16 LE at 16 kHz."""
    n = int(16000 * seconds)
    samples = array.array(
        "h",
        (
            round(6000 * math.sin(2 * math.pi * 440 * i / 16000))
            + round(4000 * math.sin(2 * math.pi * 1000 * i / 16000))
            for i in range(n)
        ),
    )
    if sys.byteorder != "little":
        samples.byteswap()
    return samples.tobytes()


def _snr_db(audioop: ModuleType, ulaw: bytes, oracle_ulaw: bytes) -> float:
    """Signal-to-difference ratio of two µ-law signals (decoded), sample for sample."""
    ours = array.array("h", audioop.ulaw2lin(ulaw, 2))
    theirs = array.array("h", audioop.ulaw2lin(oracle_ulaw, 2))
    signal = sum(s * s for s in theirs)
    error = sum((a - b) ** 2 for a, b in zip(ours, theirs, strict=True))
    return 10 * math.log10(signal / max(error, 1))


@pytest.mark.parametrize("sizes", [[640], [3, 1001, 640, 77]], ids=["20ms", "irregular"])
def test_l16_16khz_reaches_the_sink_as_ulaw_8khz_close_to_audioop(
    audioop: ModuleType, sizes: list[int]
) -> None:
    """PCM16 16 kHz is resampled to 8 kHz (streaming) and µ-law encoded: audioop's result, near."""
    pcm = _tone_16k(1.0)
    heard = PlivoPump(L16_16K).send(cut(pcm, sizes))
    converted, _ = audioop.ratecv(_native(audioop, pcm), 2, 1, 16000, 8000, None)
    oracle = audioop.lin2ulaw(converted, 2)
    assert len(heard.audio) == len(oracle) == 8000  # one µ-law byte per 8 kHz sample
    assert all(len(frame) == FRAME for frame in heard.frames)
    assert _snr_db(audioop, heard.audio, oracle) > 30


def test_l16_16khz_speech_is_heard_by_the_vad() -> None:
    """Speech streamed as PCM16 16 kHz starts the VAD once, as the µ-law clip does."""
    from voicecall.media import Resampler

    upsampler = Resampler(8000, 16000)
    pcm = upsampler.process(ulaw_to_pcm16(HELLO)) + upsampler.flush()
    heard = PlivoPump(L16_16K).send(cut(pcm, [640]))
    assert heard.speech_starts == 1
    assert len(heard.audio) == len(HELLO)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=2000), min_size=1, max_size=30))
def test_every_chunking_of_l16_16khz_gives_the_same_sink_bytes(sizes: list[int]) -> None:
    """The resampler's state is carried across chunks: the chunking does not change the audio."""
    pcm = _TONE_HALF_SECOND
    reference = PlivoPump(L16_16K).send(cut(pcm, [len(pcm)]))
    assert PlivoPump(L16_16K).send(cut(pcm, sizes)).frames == reference.frames


_TONE_HALF_SECOND = _tone_16k(0.5)


@pytest.mark.parametrize(
    ("media_format", "announced"),
    [
        (None, ("ulaw", 8000)),
        ({"encoding": "audio/x-mulaw", "sampleRate": 8000}, ("ulaw", 8000)),
        ({"encoding": "audio/x-l16", "sampleRate": "16000"}, ("pcm16", 16000)),
        ({"encoding": "audio/x-L16;rate=8000"}, ("pcm16", 8000)),
        ({"encoding": "audio/opus", "sampleRate": 48000}, ("audio/opus", 48000)),
        ({"encoding": "audio/x-l16", "sampleRate": "fast"}, ("pcm16", 0)),
        ({"sampleRate": 8000}, ("(no encoding)", 0)),
    ],
    ids=["absent", "mulaw", "l16-16k", "content-type-spelling", "opus", "bad-rate", "no-enc"],
)
def test_start_media_format_is_what_the_pump_is_told(
    media_format: Any, announced: tuple[str, int]
) -> None:
    """``start.mediaFormat`` becomes the protocol's inbound format; an odd one is not an error."""
    stream = PlivoPump(media_format)
    assert (stream.protocol.inbound_encoding, stream.protocol.inbound_rate_hz) == announced


# -- garbage and unusable formats -----------------------------------------------------------------


def test_bad_base64_and_empty_payloads_are_only_counted() -> None:
    """Garbage is counted, never raised, and the audio around it still arrives intact."""
    stream = PlivoPump()
    chunks = list(cut(HELLO[: 20 * FRAME], [320]))
    for index, chunk in enumerate(chunks):
        stream.media(chunk)
        if index == 2:
            stream.media("@@not base64@@")
            stream.media(b"")
            assert stream.feed("{not json") is None
    stream.pump.drain()
    assert stream.heard.audio == HELLO[: 20 * FRAME]
    assert stream.garbage.counts == {"base64": 1, "size": 1, "json": 1}


def test_empty_payloads_are_garbage_on_a_20ms_stream_too() -> None:
    """An empty payload is a ``size`` frame; it does not switch the stream to re-framing."""
    stream = PlivoPump()
    stream.media(HELLO[:FRAME], chunk=1)
    stream.media(b"", chunk=99)
    stream.media(HELLO[FRAME : 2 * FRAME], chunk=2)
    heard = stream.send([])
    assert heard.frames == as_frames(HELLO[: 2 * FRAME])
    assert stream.pump.reframed_frames == 0
    assert stream.garbage.counts == {"size": 1}


@pytest.mark.parametrize(
    ("media_format", "named"),
    [
        ({"encoding": "audio/opus", "sampleRate": 48000}, "'audio/opus' at 48000 Hz"),
        ({"encoding": "audio/x-l16", "sampleRate": 11025}, "'pcm16' at 11025 Hz"),
        ({"encoding": "audio/x-mulaw", "sampleRate": 16000}, "'ulaw' at 16000 Hz"),
        ("mulaw", "\"mediaFormat 'mulaw'\" at 0 Hz"),
    ],
    ids=["opus", "l16-11025", "mulaw-16k", "not-an-object"],
)
def test_an_unusable_format_is_named_once_and_its_audio_counted_as_garbage(
    caplog: pytest.LogCaptureFixture, media_format: Any, named: str
) -> None:
    """One warning names the announced format; its frames are counted, nothing reaches STT."""
    with caplog.at_level(logging.WARNING, logger="voicecall.streaming"):
        stream = PlivoPump(media_format)
        heard = stream.send(cut(HELLO[: 10 * FRAME], [FRAME]))
        stream.media("@@not base64@@")
    assert heard.frames == [] and heard.speech_starts == 0
    assert stream.garbage.counts == {"format": 10, "base64": 1}
    format_warnings = [r.getMessage() for r in caplog.records if "announced" in r.getMessage()]
    assert len(format_warnings) == 1
    assert named in format_warnings[0] and "plivo" in format_warnings[0]
    # the first really malformed frame still gets its own warning
    assert any("@@" not in m and "base64" in m for m in (r.getMessage() for r in caplog.records))


def test_a_20ms_carrier_still_counts_other_sizes_as_garbage() -> None:
    """Twilio documents 20 ms inbound frames: there another size stays a ``size`` frame."""
    heard: list[bytes] = []
    garbage = GarbageLog("twilio-stream")
    pump = InboundPump(TwilioStreamProtocol(), garbage=garbage, sink=heard.append)
    frames = as_frames(HELLO[: 3 * FRAME])
    sent = [(1, frames[0]), (2, HELLO[:80]), (2, HELLO[:320]), (2, frames[1]), (3, frames[2])]
    for seq, chunk in sent:
        payload = base64.b64encode(chunk).decode()
        media = {"track": "inbound", "chunk": str(seq), "timestamp": str(20 * seq)}
        pump.feed(json.dumps({"event": "media", "media": {**media, "payload": payload}}))
    pump.drain()
    assert garbage.counts == {"size": 2}
    assert heard == frames
    assert pump.reframed_frames == 0
