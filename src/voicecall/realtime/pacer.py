"""The outbound pacer of the realtime bridge: model audio → paced carrier frames (SPEC §7.5, §7.7).

One :class:`RealtimePacer` per carrier stream. The provider session hands it the model's audio
(µ-law 8 kHz, any chunk size, tagged with the response item it belongs to); the pacer writes
exact 160-byte (20 ms) frames to the carrier socket through a sink, the same way the classic
playback engine (:mod:`voicecall.streaming.playback`) does, with the realtime rules:

- Frames go out on an absolute schedule (``due += 20 ms``), each written ``LEAD_FRAMES`` frames
  (160 ms) before its play time: the carrier always holds a 160 ms cushion. ONE timer handle
  per stream (through the injectable :class:`~voicecall.streaming.playback.Clock`) drives every
  frame and the drain bound; no Task or Future per frame. A loop stall that let the carrier run
  dry re-anchors the schedule (the cushion is rebuilt, the backlog is not burst out).
- No keep-alive silence: realtime providers stream continuously, and the carrier simply plays
  nothing while the model is silent (unlike classic playback, which fills synthesis gaps).
- Audio is one continuous byte stream across response items: a frame may end one item and start
  the next. A partial last frame waits for more audio until :meth:`RealtimePacer.flush` (end of
  a response) pads it with µ-law silence (``0xFF``).
- At most ``QUEUE_CAP_BYTES`` (960,000 bytes = 120 s) queued: audio beyond it is refused and
  :meth:`RealtimePacer.push` returns False; the bridge closes the socket with
  ``OVERFLOW_CLOSE_CODE`` / ``OVERFLOW_REASON``.
- After every ``MARK_EVERY_FRAMES`` frames (160 ms) of sent audio, and after the last frame of
  a flushed response, a mark ``playout-<uuid>-<n>`` is sent. The carrier echoes a mark once the
  audio before it has played; echoed marks give the "confirmed played ms" of each response item
  (:meth:`RealtimePacer.confirmed_ms`), which OpenAI's ``conversation.item.truncate`` needs as
  ``audio_end_ms`` on barge-in. At most ``MAX_SEGMENTS`` item segments and
  ``MAX_PENDING_MARKS`` unechoed marks are remembered (the oldest are forgotten first).
- :meth:`RealtimePacer.clear` (barge-in) drops the queued audio, forgets the pending marks, sends
  the carrier's ``clear`` once if anything was queued or playing, and says which item was
  playing and how much of it was confirmed played.
- :meth:`RealtimePacer.drain` (``end_call``'s farewell) calls back once every queued frame is
  sent and the last mark echoed, or at its bound: the queued duration + 2 s, at most
  ``farewellMaxWaitMs``.

The pacer is sans-IO: it never reads a clock but its own, never sleeps, never imports asyncio.
Usage (in the bridge)::

    pacer = RealtimePacer(sink=send_text, build_media=proto.build_media,
                          build_mark=proto.build_mark, build_clear=proto.build_clear,
                          clock=LoopClock())
    if not pacer.push(event.audio, event.item_id):          # AudioOut
        await ws.close(code=OVERFLOW_CLOSE_CODE, message=OVERFLOW_REASON.encode())
    pacer.flush()                                            # ResponseDone
    pacer.on_mark(name)                                      # carrier mark echo
    cleared = pacer.clear()                                  # barge-in
    if cleared.item_id is not None:
        await session.truncate(cleared.item_id, cleared.confirmed_ms)
    pacer.drain(lambda ok: fut.done() or fut.set_result(ok)) # end_call farewell
"""

from __future__ import annotations

import binascii
import itertools
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from voicecall.streaming.playback import (
    FRAME_BYTES,
    FRAME_S,
    MARK_GRACE_S,
    SILENCE_FRAME,
    Clock,
    FrameSink,
    TimerHandle,
)

__all__ = [
    "BYTES_PER_MS",
    "FAREWELL_MAX_WAIT_MS",
    "LEAD_FRAMES",
    "MARK_EVERY_FRAMES",
    "MAX_PENDING_MARKS",
    "MAX_SEGMENTS",
    "OVERFLOW_CLOSE_CODE",
    "OVERFLOW_REASON",
    "QUEUE_CAP_BYTES",
    "ClearResult",
    "DrainCallback",
    "RealtimePacer",
]

log = logging.getLogger("voicecall.realtime.pacer")

BYTES_PER_MS: Final = 8  # µ-law 8 kHz: one byte per sample
LEAD_FRAMES: Final = 8  # 160 ms cushion at the carrier
QUEUE_CAP_BYTES: Final = 960_000  # 120 s of audio
MARK_EVERY_FRAMES: Final = 8  # a mark after every 160 ms of sent audio
MAX_SEGMENTS: Final = 128
MAX_PENDING_MARKS: Final = 64
FAREWELL_MAX_WAIT_MS: Final = 15_000
OVERFLOW_CLOSE_CODE: Final = 1013
OVERFLOW_REASON: Final = "Realtime audio queue overflow"

_EPSILON_S: Final = 1e-6  # float slack when comparing schedule times

DrainCallback = Callable[[bool], None]
"""Called once: True when everything was sent and its last mark echoed, False otherwise."""


@dataclass(frozen=True, slots=True)
class ClearResult:
    """What a barge-in :meth:`RealtimePacer.clear` interrupted.

    ``item_id`` is the response item being played (None when nothing tagged was playing) and
    ``confirmed_ms`` how much of it the carrier confirmed played (the truncate point).
    ``sent_clear`` says whether the carrier ``clear`` went out; ``dropped_bytes`` counts the
    queued audio that was never sent.
    """

    item_id: str | None
    confirmed_ms: int
    sent_clear: bool
    dropped_bytes: int


class _Segment:
    """A run of one item's audio in the outbound byte stream: offsets ``[start, end)``."""

    __slots__ = ("end", "item_id", "start")

    def __init__(self, item_id: str, start: int, end: int) -> None:
        self.item_id = item_id
        self.start = start
        self.end = end


class RealtimePacer:
    """The outbound audio of one realtime stream (see the module docstring)."""

    def __init__(
        self,
        *,
        sink: FrameSink,
        build_media: Callable[[str], str],
        build_mark: Callable[[str], str],
        build_clear: Callable[[], str],
        clock: Clock,
        lead_frames: int = LEAD_FRAMES,
        queue_cap_bytes: int = QUEUE_CAP_BYTES,
        mark_every_frames: int = MARK_EVERY_FRAMES,
        max_segments: int = MAX_SEGMENTS,
        max_pending_marks: int = MAX_PENDING_MARKS,
        label: str = "",
    ) -> None:
        self._sink = sink
        self._build_media = build_media
        self._build_mark = build_mark
        self._build_clear = build_clear
        self._clock = clock
        self.lead_s = lead_frames * FRAME_S
        self.queue_cap_bytes = queue_cap_bytes
        self.mark_every_frames = mark_every_frames
        self.max_pending_marks = max_pending_marks
        self.label = label
        self.mark_prefix = f"playout-{uuid.uuid4()}-"
        self._buf = bytearray()  # queued, not yet sent
        self._sent = 0  # stream offset (bytes) of everything written to the carrier
        self._acked = 0  # stream offset the carrier confirmed played (echoed marks)
        self._segments: deque[_Segment] = deque(maxlen=max_segments)
        self._marks: OrderedDict[str, int] = OrderedDict()  # name -> stream offset before it
        self._mark_seq = itertools.count(1)
        self._unmarked = 0  # frames sent since the last mark
        self._tail_mark = False  # flushed: mark after the last queued frame
        self._handle: TimerHandle | None = None
        self._handle_at = 0.0
        self._due = 0.0  # absolute play time of the next frame
        self._drain_waiters: list[DrainCallback] = []
        self._drain_deadline: float | None = None
        self._closed = False
        self.overflowed = False
        self.first_audio_at: float | None = None  # clock time the first frame was written
        self.frames_sent = 0
        self.marks_sent = 0
        self.reanchors = 0  # times a loop stall re-anchored the schedule
        self.send_failures = 0

    # -- what the bridge reads -------------------------------------------------------------------

    def now(self) -> float:
        """The pacer clock's time (seconds; what :attr:`first_audio_at` is measured on)."""
        return self._clock.time()

    def first_audio_ms(self, since: float) -> int | None:
        """Milliseconds from ``since`` (pacer clock) to the first frame written; None before it.

        ``metadata.realtimeFirstAudioMs`` = ``first_audio_ms(<clock time of the carrier start>)``.
        """
        if self.first_audio_at is None:
            return None
        return round((self.first_audio_at - since) * 1000)

    @property
    def queued_bytes(self) -> int:
        """Audio accepted but not yet written to the carrier."""
        return len(self._buf)

    @property
    def queued_ms(self) -> int:
        """:attr:`queued_bytes` as milliseconds of audio."""
        return len(self._buf) // BYTES_PER_MS

    @property
    def next_due(self) -> float:
        """The absolute clock time at which the next frame is due to play."""
        return self._due

    @property
    def pending_marks(self) -> tuple[str, ...]:
        """Names of the marks sent and not yet echoed, oldest first."""
        return tuple(self._marks)

    @property
    def playing(self) -> bool:
        """Whether audio is queued, or sent and not yet over (by the clock or unechoed marks)."""
        return bool(self._buf or self._marks) or self._clock.time() < self._due

    def confirmed_ms(self, item_id: str) -> int:
        """Milliseconds of ``item_id``'s audio the carrier confirmed played (0 when unknown)."""
        heard = 0
        acked = self._acked
        for seg in self._segments:
            if seg.item_id == item_id and acked > seg.start:
                heard += min(acked, seg.end) - seg.start
        return heard // BYTES_PER_MS

    # -- what the bridge calls -------------------------------------------------------------------

    def push(self, audio: bytes, item_id: str | None = None) -> bool:
        """Queue model audio (µ-law 8 kHz, any length) of response item ``item_id``.

        Returns False when it would take the queue past ``queue_cap_bytes``: the audio is refused
        and the bridge closes the socket (``OVERFLOW_CLOSE_CODE``, ``OVERFLOW_REASON``). Audio
        pushed after :meth:`close` is ignored.
        """
        size = len(audio)
        if self._closed or not size:
            return True
        buf = self._buf
        before = len(buf)
        if before + size > self.queue_cap_bytes:
            if not self.overflowed:
                log.warning("pacer %s: %s (%d bytes queued)", self.label, OVERFLOW_REASON, before)
            self.overflowed = True
            return False
        start = self._sent + before
        buf += audio
        if item_id is not None:
            segments = self._segments
            last = segments[-1] if segments else None
            if last is not None and last.item_id == item_id and last.end == start:
                last.end += size
            else:
                segments.append(_Segment(item_id, start, start + size))
        if before < FRAME_BYTES <= before + size:  # the first whole frame: start the timer
            now = self._clock.time()
            self._due = max(self._due, now)  # resuming after the carrier ran dry: play now
            self._reschedule()
        return True

    def flush(self) -> None:
        """The response's audio is complete: pad a partial last frame with silence, send it, and
        mark the end of the audio so its play-out gets confirmed."""
        if self._closed:
            return
        buf = self._buf
        before = len(buf)
        if before % FRAME_BYTES:
            buf.extend(SILENCE_FRAME[: FRAME_BYTES - before % FRAME_BYTES])
        if buf:
            self._tail_mark = True
            if before < FRAME_BYTES:  # the padding made the first whole frame: start the timer
                self._due = max(self._due, self._clock.time())
            self._reschedule()
        elif self._unmarked:
            self._send_mark()

    def on_mark(self, name: str) -> bool:
        """The carrier echoed mark ``name``: it, and every mark before it, has played.

        Returns False (and changes nothing) for a name that is not a pending mark of this pacer:
        another engine's mark, or one forgotten by :meth:`clear` or the pending-mark cap.
        """
        marks = self._marks
        if name not in marks:
            return False
        while marks:
            mark, offset = marks.popitem(last=False)
            if offset > self._acked:
                self._acked = offset
            if mark == name:
                break
        if self._drain_waiters and not self._buf and not marks:
            self._finish_drain(True)
            self._reschedule()  # the drain bound's timer is no longer needed
        return True

    def clear(self) -> ClearResult:
        """Barge-in: drop queued audio, forget pending marks, send the carrier ``clear`` once if
        anything was queued or playing; which item was playing and its confirmed ms."""
        now = self._clock.time()
        playing = bool(self._buf or self._marks) or now < self._due
        item_id = self._playing_item(now)
        confirmed = self.confirmed_ms(item_id) if item_id is not None else 0
        dropped = self._drop()
        self._due = now  # the carrier's buffer is empty: what comes next starts a fresh cushion
        sent = False
        if playing and not self._closed:
            sent = self._sink(self._build_clear())
        return ClearResult(item_id, confirmed, sent, dropped)

    def drain(self, callback: DrainCallback, max_wait_ms: int = FAREWELL_MAX_WAIT_MS) -> None:
        """Farewell: flush, then call ``callback(True)`` once every queued frame is sent and the
        last mark echoed, or ``callback(False)`` at the bound (the queued duration, including the
        cushion in flight, + 2 s, at most ``max_wait_ms``), on :meth:`clear` or :meth:`close`.
        Called at once when nothing is queued or awaiting an echo."""
        if self._closed:
            callback(False)
            return
        self.flush()
        if not self._buf and not self._marks:
            callback(True)
            return
        now = self._clock.time()
        in_flight = max(self._due - now, 0.0)
        bound = in_flight + len(self._buf) / (BYTES_PER_MS * 1000) + MARK_GRACE_S
        deadline = now + min(bound, max_wait_ms / 1000)
        if self._drain_deadline is None or deadline < self._drain_deadline:
            self._drain_deadline = deadline
        self._drain_waiters.append(callback)
        self._reschedule()

    def close(self) -> None:
        """The stream is gone: drop everything without sending; a pending drain gets False."""
        self._closed = True
        self._drop()

    # -- the timer -------------------------------------------------------------------------------

    def _reschedule(self) -> None:
        when: float | None = None
        if len(self._buf) >= FRAME_BYTES:
            when = self._due - self.lead_s
        deadline = self._drain_deadline
        if deadline is not None and (when is None or deadline < when):
            when = deadline
        if self._handle is not None:
            if when == self._handle_at:
                return
            self._handle.cancel()
            self._handle = None
        if when is not None:
            self._handle_at = when
            self._handle = self._clock.call_at(when, self._tick)

    def _tick(self) -> None:
        self._handle = None
        now = self._clock.time()
        buf = self._buf
        if len(buf) >= FRAME_BYTES:
            if self._due < now - FRAME_S:
                # The loop stalled and the carrier ran dry: rebuild the cushion from now rather
                # than bursting out every frame that fell due meanwhile.
                self._due = now
                self.reanchors += 1
            horizon = now + self.lead_s + _EPSILON_S
            while len(buf) >= FRAME_BYTES and self._due <= horizon:
                payload = binascii.b2a_base64(buf[:FRAME_BYTES], newline=False).decode("ascii")
                if not self._sink(self._build_media(payload)):
                    self._send_failed()
                    return
                del buf[:FRAME_BYTES]
                self._sent += FRAME_BYTES
                self._due += FRAME_S
                self.frames_sent += 1
                if self.first_audio_at is None:
                    self.first_audio_at = now
                self._unmarked += 1
                if self._unmarked >= self.mark_every_frames:
                    self._send_mark()
            if self._tail_mark and not buf:
                self._tail_mark = False
                if self._unmarked:
                    self._send_mark()
        if self._drain_waiters:
            if not buf and not self._marks:
                self._finish_drain(True)
            elif self._drain_deadline is not None and now >= self._drain_deadline - _EPSILON_S:
                log.warning("pacer %s: farewell not confirmed played in time", self.label)
                self._finish_drain(False)
        self._reschedule()

    def _send_mark(self) -> None:
        self._unmarked = 0
        name = f"{self.mark_prefix}{next(self._mark_seq)}"
        if not self._sink(self._build_mark(name)):
            return
        self.marks_sent += 1
        marks = self._marks
        marks[name] = self._sent
        if len(marks) > self.max_pending_marks:
            marks.popitem(last=False)

    def _send_failed(self) -> None:
        log.warning("pacer %s: a frame could not be sent; clearing", self.label)
        self.send_failures += 1
        self._drop()
        self._sink(self._build_clear())

    # -- state -----------------------------------------------------------------------------------

    def _playing_item(self, now: float) -> str | None:
        """The tagged item at the play-out position: the oldest one not yet over, by echoed
        marks or (when echoes lag or were forgotten) by the clock."""
        in_flight = round(max(self._due - now, 0.0) * BYTES_PER_MS * 1000)
        position = max(self._acked, self._sent - in_flight)
        for seg in self._segments:
            if seg.end > position:
                return seg.item_id
        return None

    def _drop(self) -> int:
        """Forget queued audio, pending marks and a pending drain (False); the bytes dropped."""
        dropped = len(self._buf)
        self._buf.clear()
        self._marks.clear()
        self._unmarked = 0
        self._tail_mark = False
        segments = self._segments
        while segments and segments[-1].start >= self._sent:  # never sent at all
            segments.pop()
        if segments and segments[-1].end > self._sent:
            segments[-1].end = self._sent
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._finish_drain(False)
        return dropped

    def _finish_drain(self, ok: bool) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        self._drain_deadline = None
        for callback in waiters:
            callback(ok)
