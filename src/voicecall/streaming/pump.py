"""The per-frame inbound path: carrier text frame -> µ-law -> jitter buffer -> VAD -> STT.

Everything runs inline in the websocket read loop (DESIGN "The hot path"): no Task, Future or
queue per frame. The jitter buffer is driven by arrivals: a frame is played out as soon as
``JITTER_TARGET_FRAMES`` real frames are buffered, so reordering by one frame is repaired, a
missing frame is concealed (faded repeat, then silence), and late or duplicate frames are
dropped and counted. The audio stays µ-law 8 kHz end to end; the STT session converts only for
a provider that does not take µ-law.

Not every carrier sends 20 ms frames (Plivo's inbound chunk size is unverified, and Plivo may
stream PCM16 instead of µ-law): a payload of another size is re-framed into 160-byte frames in
arrival order, and PCM16 is converted to µ-law 8 kHz first, so VAD and STT always see the same
20 ms µ-law frames (see :class:`InboundPump`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from voicecall.carriers.media_stream import (
    FRAME_BYTES,
    MediaReceived,
    StreamEvent,
    StreamFrameError,
    StreamProtocol,
    StreamStarted,
    decode_payload,
)
from voicecall.media import (
    SPEECH_STARTED,
    SUPPORTED_RATES_HZ,
    JitterBuffer,
    JitterStats,
    VadFramer,
)
from voicecall.tts.audio import OutputFormat, UlawConverter

__all__ = [
    "FIXED_FRAME_CARRIERS",
    "FORMAT_GARBAGE",
    "JITTER_TARGET_FRAMES",
    "GarbageLog",
    "InboundPump",
]

log = logging.getLogger("voicecall.streaming")

#: Real frames buffered before one is played out (20 ms of reordering tolerance).
JITTER_TARGET_FRAMES = 2
_JITTER_CAPACITY = 64  # 1.28 s: a longer gap is counted lost without replaying all of it

#: Carriers whose protocol documents 20 ms inbound frames (protocols/twilio.md: "Twilio sends
#: 20 ms chunks inbound"). There a payload of another size is still a garbage ``size`` frame:
#: re-framing it would only let one malformed frame turn off the jitter buffer for the stream.
FIXED_FRAME_CARRIERS = frozenset({"twilio"})

_SILENCE_FRAME = b"\xff" * FRAME_BYTES  # µ-law

#: Garbage kind of the audio of a stream whose announced format the pump cannot use.
FORMAT_GARBAGE = "format"


class GarbageLog:
    """Counts unusable frames by kind and logs the first one of a stream (never raises)."""

    __slots__ = ("_warned", "counts", "label")

    def __init__(self, label: str) -> None:
        self.label = label
        self.counts: dict[str, int] = {}
        self._warned = False

    @property
    def total(self) -> int:
        """Unusable frames so far."""
        return sum(self.counts.values())

    def count(self, error: StreamFrameError) -> None:
        """Record one unusable frame; the stream's first one is logged."""
        if not self._warned:
            self._warned = True
            log.warning(
                "media stream %s: ignoring malformed frames (first: %s); "
                "further ones are only counted",
                self.label,
                error,
            )
        self.counts[error.kind] = self.counts.get(error.kind, 0) + 1

    def tally(self, kind: str) -> None:
        """Record one unusable frame whose cause was already logged (no warning of its own)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1


class InboundPump:
    """One stream's inbound path; :meth:`feed` takes each text frame as it is read.

    Audio takes one of two routes, chosen per stream:

    - **Sequence-numbered** (the start of every µ-law 8 kHz stream): each payload is exactly
      one 160-byte frame and goes through the jitter buffer under the carrier's sequence
      number, which repairs reordering and conceals lost frames.
    - **Re-framed**: from the first payload of another size on (only on a carrier not in
      :data:`FIXED_FRAME_CARRIERS`), and from the start for a PCM16 stream. Payloads are cut
      into 160-byte frames in arrival order; the bytes short of a whole frame wait in a small
      accumulator for the next payload (and are played, short, by :meth:`drain`). Anything the
      jitter buffer still held is played out first, so no audio is reordered by the switch.

    Re-framed audio **bypasses** the jitter buffer rather than feeding it synthesized
    consecutive sequence numbers. A carrier's number counts chunks, and once chunks are not
    20 ms each a gap in it no longer says how many 20 ms frames are missing; synthesized numbers
    would be gap-free by construction, so the buffer could never detect a loss or conceal one:
    it would only add 40 ms of latency and report every such stream as loss-free. Bypassing
    keeps :attr:`jitter_stats` (and its loss-concealment counters) about the frames it really
    sequenced; :attr:`reframed_frames` counts the others. The websocket is ordered, so arrival
    order is the order the carrier sent.

    The format comes from the protocol after ``start``: ``inbound_encoding`` (``ulaw``, the
    default, or ``pcm16`` = PCM16 LE) and ``inbound_rate_hz`` (default 8000), attributes a
    carrier's protocol may have. PCM16 at a rate the media core resamples is converted to µ-law
    8 kHz by one streaming converter per stream (resampler state carried across payloads);
    any other format is named in one warning and its audio frames are counted as garbage
    (kind :data:`FORMAT_GARBAGE`).
    """

    __slots__ = (
        "_carry",
        "_format",
        "_on_speech_started",
        "_parse",
        "_pcm16",
        "_protocol",
        "_reframing",
        "_strict",
        "_unusable",
        "garbage",
        "jitter",
        "reframed_frames",
        "sink",
        "vad",
    )

    def __init__(
        self,
        protocol: StreamProtocol,
        *,
        garbage: GarbageLog,
        sink: Callable[[bytes], None] | None = None,
        on_speech_started: Callable[[], None] | None = None,
    ) -> None:
        self._parse = protocol.parse
        self._protocol = protocol
        self.garbage = garbage
        self.sink = sink  # the STT session's send_audio (None: no transcription)
        self._on_speech_started = on_speech_started
        self.jitter = JitterBuffer(
            frame_bytes=FRAME_BYTES, target_depth=JITTER_TARGET_FRAMES, capacity=_JITTER_CAPACITY
        )
        self.vad = VadFramer()
        #: Frames played by the re-framed route (they never enter the jitter buffer).
        self.reframed_frames = 0
        self._strict = protocol.carrier in FIXED_FRAME_CARRIERS
        self._carry = bytearray()  # re-framed bytes short of a whole frame
        self._reframing = False
        self._pcm16: UlawConverter | None = None
        self._unusable = False
        self._format: tuple[str, int] = ("ulaw", 8000)
        self._configure()

    @property
    def jitter_stats(self) -> JitterStats:
        """The jitter buffer's counters (received, lost, late, duplicate, concealed, ...)."""
        return self.jitter.stats

    def feed(self, text: str | bytes) -> StreamEvent | None:
        """Take one frame: audio is handled here; any other event is returned to the caller."""
        try:
            event = self._parse(text)
        except StreamFrameError as exc:
            self.garbage.count(exc)
            return None
        if type(event) is not MediaReceived:
            if isinstance(event, StreamStarted):
                self._configure()
            return event
        if not event.inbound:
            return None
        try:
            ulaw = decode_payload(event.payload)
        except StreamFrameError as exc:
            self.garbage.count(exc)
            return None
        if len(ulaw) != FRAME_BYTES or self._reframing:
            self._other(ulaw)
            return None
        jitter = self.jitter
        jitter.push(event.seq, event.timestamp_ms, ulaw)
        while jitter.depth >= JITTER_TARGET_FRAMES:
            self._play(jitter.pop())
        return None

    def drain(self) -> None:
        """Play out everything still held (the stream is ending).

        The jitter buffer's frames, then the converter's resampler tail and the accumulator's
        last partial frame, which is handed on short rather than padded with silence.
        """
        self._flush_jitter()
        if self._pcm16 is not None:
            tail = self._pcm16.flush()
            if tail:
                self._reframe(tail)
        carry = self._carry
        if carry:
            tail = bytes(carry)
            carry.clear()
            self._play(tail)

    def _flush_jitter(self) -> None:
        """Play out the frames the jitter buffer holds, in sequence order (gaps concealed).

        Until it is primed (``JITTER_TARGET_FRAMES`` frames buffered once) the buffer's
        :meth:`~JitterBuffer.pop` only gives silence and keeps its frame, so popping "while
        depth" would never end. Its one frame then sits at the playout point; a silence frame
        pushed just before it primes the buffer and is popped unplayed (it counts as one more
        received frame). Should the frame be elsewhere (a jump of a whole capacity before any
        playout), the buffer cannot be primed from here and that frame is given up.
        """
        jitter = self.jitter
        if jitter.depth and not jitter.primed:
            head = jitter.playout_seq
            if head is None:
                return
            jitter.push((head - 1) & 0xFFFF, 0, _SILENCE_FRAME)
            if not jitter.primed:
                return
            jitter.pop()  # the silence just pushed
        while jitter.depth:
            self._play(jitter.pop())

    def _play(self, frame: bytes) -> None:
        for vad_event in self.vad.process(frame):
            if vad_event.kind == SPEECH_STARTED and self._on_speech_started is not None:
                self._on_speech_started()
        sink = self.sink
        if sink is not None:
            sink(frame)

    # -- payloads off the sequence-numbered route -----------------------------------------------

    def _other(self, data: bytes) -> None:
        """A payload that is not one µ-law frame of a sequence-numbered stream."""
        if self._unusable:
            self.garbage.tally(FORMAT_GARBAGE)
            return
        if not data or (self._strict and len(data) != FRAME_BYTES):
            self.garbage.count(
                StreamFrameError("size", f"{len(data)}-byte media frame (want {FRAME_BYTES})")
            )
            return
        pcm16 = self._pcm16
        if pcm16 is not None:
            data = pcm16.feed(data)
        elif not self._reframing:
            self._reframing = True
            self._flush_jitter()  # what was sequenced so far plays before this payload
        self._reframe(data)

    def _reframe(self, ulaw: bytes) -> None:
        """Play ``ulaw`` as whole 160-byte frames in order; the remainder waits in ``_carry``.

        The accumulator is settled before any frame is played, so a callback that reaches back
        into the pump finds it consistent.
        """
        carry = self._carry
        if carry:
            carry += ulaw
            end = len(carry) - len(carry) % FRAME_BYTES
            if not end:
                return
            with memoryview(carry) as view:
                ulaw = bytes(view[:end])
            del carry[:end]
        else:
            end = len(ulaw) - len(ulaw) % FRAME_BYTES
            if end != len(ulaw):
                carry += memoryview(ulaw)[end:]
        self.reframed_frames += end // FRAME_BYTES
        for start in range(0, end, FRAME_BYTES):
            self._play(ulaw[start : start + FRAME_BYTES])

    def _configure(self) -> None:
        """Adopt the protocol's announced inbound format (after ``start``)."""
        protocol = self._protocol
        encoding = getattr(protocol, "inbound_encoding", "ulaw")
        rate = getattr(protocol, "inbound_rate_hz", 8000)
        media_format = (str(encoding), rate if type(rate) is int else 0)
        if media_format == self._format:
            return  # unchanged (a repeated start, or µ-law 8 kHz as assumed)
        self._format = media_format
        self._pcm16 = None
        self._unusable = False
        encoding, rate = media_format
        if encoding == "ulaw" and rate == 8000:
            return
        self._reframing = True  # never sequence-numbered: payloads are not µ-law frames
        if encoding == "pcm16" and rate in SUPPORTED_RATES_HZ:
            self._pcm16 = UlawConverter(OutputFormat(f"pcm16 {rate} Hz", "pcm16", rate))
            return
        self._unusable = True
        log.warning(
            "media stream %s: %s announced inbound audio %r at %d Hz, which is not supported "
            "(µ-law 8 kHz, or PCM16 at %s Hz); its audio is dropped and counted as %r garbage",
            self.garbage.label,
            protocol.carrier,
            encoding,
            rate,
            "/".join(str(r) for r in SUPPORTED_RATES_HZ),
            FORMAT_GARBAGE,
        )
