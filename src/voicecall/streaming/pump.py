"""The per-frame inbound path: carrier text frame -> µ-law -> jitter buffer -> VAD -> STT.

Everything runs inline in the websocket read loop (DESIGN "The hot path"): no Task, Future or
queue per frame. The jitter buffer is driven by arrivals: a frame is played out as soon as
``JITTER_TARGET_FRAMES`` real frames are buffered, so reordering by one frame is repaired, a
missing frame is concealed (faded repeat, then silence), and late or duplicate frames are
dropped and counted. The audio stays µ-law 8 kHz end to end; the STT session converts only for
a provider that does not take µ-law.
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
    decode_payload,
)
from voicecall.media import SPEECH_STARTED, JitterBuffer, JitterStats, VadFramer

__all__ = ["JITTER_TARGET_FRAMES", "GarbageLog", "InboundPump"]

log = logging.getLogger("voicecall.streaming")

#: Real frames buffered before one is played out (20 ms of reordering tolerance).
JITTER_TARGET_FRAMES = 2
_JITTER_CAPACITY = 64  # 1.28 s: a longer gap is counted lost without replaying all of it


class GarbageLog:
    """Counts unusable frames by kind and logs the first one of a stream (never raises)."""

    __slots__ = ("counts", "label")

    def __init__(self, label: str) -> None:
        self.label = label
        self.counts: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Unusable frames so far."""
        return sum(self.counts.values())

    def count(self, error: StreamFrameError) -> None:
        """Record one unusable frame; the stream's first one is logged."""
        if not self.counts:
            log.warning(
                "media stream %s: ignoring malformed frames (first: %s); "
                "further ones are only counted",
                self.label,
                error,
            )
        self.counts[error.kind] = self.counts.get(error.kind, 0) + 1


class InboundPump:
    """One stream's inbound path; :meth:`feed` takes each text frame as it is read."""

    __slots__ = (
        "_on_speech_started",
        "_parse",
        "garbage",
        "jitter",
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
        self.garbage = garbage
        self.sink = sink  # the STT session's send_audio (None: no transcription)
        self._on_speech_started = on_speech_started
        self.jitter = JitterBuffer(
            frame_bytes=FRAME_BYTES, target_depth=JITTER_TARGET_FRAMES, capacity=_JITTER_CAPACITY
        )
        self.vad = VadFramer()

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
            return event
        if not event.inbound:
            return None
        try:
            ulaw = decode_payload(event.payload)
        except StreamFrameError as exc:
            self.garbage.count(exc)
            return None
        if len(ulaw) != FRAME_BYTES:
            self.garbage.count(
                StreamFrameError("size", f"{len(ulaw)}-byte media frame (want {FRAME_BYTES})")
            )
            return None
        jitter = self.jitter
        jitter.push(event.seq, event.timestamp_ms, ulaw)
        while jitter.depth >= JITTER_TARGET_FRAMES:
            self._play(jitter.pop())
        return None

    def drain(self) -> None:
        """Play out what the jitter buffer still holds (the stream is ending)."""
        jitter = self.jitter
        while jitter.depth:
            self._play(jitter.pop())

    def _play(self, frame: bytes) -> None:
        for vad_event in self.vad.process(frame):
            if vad_event.kind == SPEECH_STARTED and self._on_speech_started is not None:
                self._on_speech_started()
        sink = self.sink
        if sink is not None:
            sink(frame)
