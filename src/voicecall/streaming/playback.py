"""The bot's voice on a media stream: paced 20 ms µ-law frames, marks, keep-alive (SPEC §5.4).

One :class:`Playback` per stream. Items (an async iterator of µ-law 8 kHz bytes and the text it
says) play in FIFO order. Rules of the engine:

- Frames are exactly 160 bytes, sent on an absolute schedule (``due += 20 ms``) with a lead of
  ``LEAD_FRAMES`` frames; ONE timer handle per call drives every frame, mark timeout and
  keep-alive (no Task or Future per frame). A loop stall longer than ``MAX_LATE_S`` re-anchors
  the schedule instead of bursting the backlog.
- While the playing item has no audio yet (or synthesis stalls mid-item), a silence frame
  (160 × ``0xFF``) goes out on every tick so the carrier's buffer never runs dry. Silence goes
  out just in time (no lead): when audio arrives the engine wakes at once and sends it with the
  lead, so the caller hears it after at most one queued silence frame, not after the lead.
- Every ``progress_mark_frames`` audio frames a progress mark ``<item id>#<frames>`` is sent,
  and after the item's last frame the mark ``<item id>``. The carrier echoes marks once the
  audio before them has played: that is what the caller heard (:attr:`PlaybackResult.frames_heard`).
  The item completes on the echo of its own mark, or after its audio duration + 2 s without it.
- At most ``queue_limit`` unsettled items; one more raises :class:`PlaybackQueueFull`.
- :meth:`Playback.clear` (barge-in) interrupts the playing item, skips the queued ones, forgets
  pending marks and sends the carrier's ``clear``. Every item settles; nothing waits forever.
- A frame the sink cannot send fails the playing item, clears the rest and sends ``clear``.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from typing import Protocol

from voicecall.errors import VoicecallError

__all__ = [
    "FRAME_BYTES",
    "FRAME_S",
    "LEAD_FRAMES",
    "MARK_GRACE_S",
    "QUEUE_LIMIT",
    "SILENCE_FRAME",
    "Clock",
    "FrameSink",
    "LoopClock",
    "Playback",
    "PlaybackError",
    "PlaybackItem",
    "PlaybackQueueFull",
    "PlaybackResult",
    "PlaybackStatus",
    "TimerHandle",
]

log = logging.getLogger("voicecall.playback")

FRAME_BYTES = 160  # 20 ms of µ-law at 8 kHz
FRAME_S = 0.020
LEAD_FRAMES = 2  # frames sent ahead of their play time: the carrier's buffer never runs dry
QUEUE_LIMIT = 8
MARK_GRACE_S = 2.0
MAX_LATE_S = 0.2
# Work due this close to now is done now. uvloop rounds timers to whole milliseconds and caches
# the clock per iteration, so a tick can fire just before its frame is due; without the slack it
# would re-arm itself with zero delay and spin until the millisecond turned over.
TIMER_SLACK_S = 0.002
PROGRESS_MARK_FRAMES = 25  # one progress mark per 500 ms of audio
SILENCE_FRAME = b"\xff" * FRAME_BYTES

FrameSink = Callable[[str], bool]
"""Writes one carrier text frame now, without waiting; False when it could not be sent."""


class PlaybackError(VoicecallError, RuntimeError):
    """Playback on a media stream failed (the message says why)."""


class PlaybackQueueFull(PlaybackError):
    """The stream already holds ``queue_limit`` unsettled items."""

    def __init__(self) -> None:
        super().__init__("Telephony TTS queue is full")


class PlaybackStatus(enum.Enum):
    """How an item ended."""

    PLAYED = "played"  # the carrier echoed its mark
    MARK_TIMEOUT = "mark-timeout"  # fully sent; the echo never came (completed with a warning)
    INTERRUPTED = "interrupted"  # cleared while playing or while its mark was pending
    SKIPPED = "skipped"  # cleared before any of it was sent
    FAILED = "failed"  # synthesis failed/timed out/was empty, or a frame could not be sent


@dataclass(frozen=True, slots=True)
class PlaybackResult:
    """What became of one item, and how much of it the caller heard."""

    item_id: str
    text: str
    status: PlaybackStatus
    frames_sent: int  # audio frames written to the carrier (keep-alive silence excluded)
    frames_heard: int  # audio frames the carrier confirmed played (by echoed marks)
    error: str | None = None
    first_frame_at: float | None = None  # clock time its first audio frame was written

    @property
    def heard_text(self) -> str:
        """The part of ``text`` the caller heard, cut at a word boundary (whole text if played)."""
        if self.status is PlaybackStatus.PLAYED or self.frames_heard >= self.frames_sent > 0:
            return self.text
        if self.frames_sent == 0 or self.frames_heard == 0:
            return ""
        cut = len(self.text) * self.frames_heard // self.frames_sent
        head = self.text[:cut]
        if cut < len(self.text) and not self.text[cut].isspace():
            head = head.rpartition(" ")[0]
        return head.rstrip()


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled (``asyncio.TimerHandle``)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time in seconds and one-shot timers on it (the event loop, or a test clock)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The running event loop as a :class:`Clock`."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()

    def time(self) -> float:
        """The loop's monotonic time."""
        return self._loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """``loop.call_at``."""
        return self._loop.call_at(when, callback)


class PlaybackItem:
    """One queued utterance; ``await item.wait()`` for its :class:`PlaybackResult`."""

    __slots__ = (
        "_buffer",
        "_done",
        "_reader",
        "_source",
        "_source_done",
        "_source_error",
        "first_frame_at",
        "frames_heard",
        "frames_sent",
        "greeting",
        "item_id",
        "keepalive_frames",
        "mark_deadline",
        "started_at",
        "text",
    )

    def __init__(
        self,
        item_id: str,
        source: AsyncIterable[bytes],
        text: str,
        greeting: bool,
        done: asyncio.Future[PlaybackResult],
    ) -> None:
        self.item_id = item_id
        self.text = text
        self.greeting = greeting
        self.frames_sent = 0
        self.frames_heard = 0
        self.keepalive_frames = 0
        self.first_frame_at: float | None = None
        self.started_at: float | None = None
        self.mark_deadline: float | None = None
        self._source = source
        self._buffer = bytearray()
        self._source_done = False
        self._source_error: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._done = done

    @property
    def done(self) -> bool:
        """Whether the item has settled."""
        return self._done.done()

    async def wait(self) -> PlaybackResult:
        """Its result, once it settles (every path settles it)."""
        return await asyncio.shield(self._done)

    def result(self) -> PlaybackResult:
        """Its result; raises ``asyncio.InvalidStateError`` before it settles."""
        return self._done.result()


class Playback:
    """The outbound audio of one media stream."""

    def __init__(
        self,
        *,
        sink: FrameSink,
        build_media: Callable[[str], str],
        build_mark: Callable[[str], str],
        build_clear: Callable[[], str],
        clock: Clock | None = None,
        queue_limit: int = QUEUE_LIMIT,
        synth_timeout_s: float | None = None,
        progress_mark_frames: int = PROGRESS_MARK_FRAMES,
        lead_frames: int = LEAD_FRAMES,
        label: str = "",
    ) -> None:
        self._sink = sink
        self._build_media = build_media
        self._build_mark = build_mark
        self._build_clear = build_clear
        self._clock: Clock = clock or LoopClock()
        self.queue_limit = queue_limit
        self.synth_timeout_s = synth_timeout_s
        self.progress_mark_frames = progress_mark_frames
        self.lead_s = lead_frames * FRAME_S
        self.label = label
        self._queue: deque[PlaybackItem] = deque()  # head = playing (or next to play)
        self._awaiting: OrderedDict[str, PlaybackItem] = OrderedDict()  # final marks in flight
        self._marks: OrderedDict[str, tuple[PlaybackItem, int]] = OrderedDict()  # name -> frames
        self._handle: TimerHandle | None = None
        self._handle_at = 0.0
        self._due = 0.0  # absolute play time of the next frame
        self._seq = itertools.count(1)
        self._closed = False
        self.frames_total = 0  # every frame written (audio + keep-alive), for diagnostics
        self.ticks = 0  # timer callbacks run, for diagnostics (about one per frame)
        self.reanchors = 0  # times a loop stall reset the schedule

    # -- public ----------------------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """Whether anything is queued, playing, or waiting for the carrier to finish playing it."""
        return bool(self._queue or self._awaiting)

    @property
    def greeting_playing(self) -> bool:
        """Whether a greeting item is playing (or sent and not yet confirmed played)."""
        if self._queue and self._queue[0].greeting and self._queue[0].started_at is not None:
            return True
        return any(item.greeting for item in self._awaiting.values())

    def now(self) -> float:
        """The engine clock's time (seconds; what ``first_frame_at`` is measured on)."""
        return self._clock.time()

    @property
    def next_due(self) -> float:
        """The absolute clock time at which the next frame is due to play."""
        return self._due

    def enqueue(
        self, source: AsyncIterable[bytes], text: str = "", *, greeting: bool = False
    ) -> PlaybackItem:
        """Queue an utterance; raises :class:`PlaybackQueueFull` when the queue is full."""
        if self._closed:
            raise PlaybackError("media stream closed")
        if len(self._queue) + len(self._awaiting) >= self.queue_limit:
            raise PlaybackQueueFull()
        item_id = f"tts-{time.time_ns() // 1_000_000}-{next(self._seq)}"
        done: asyncio.Future[PlaybackResult] = asyncio.get_running_loop().create_future()
        item = PlaybackItem(item_id, source, text, greeting, done)
        self._queue.append(item)
        self._prefetch()
        self._reschedule(self._clock.time())
        return item

    def on_mark(self, name: str) -> None:
        """The carrier echoed mark ``name``: it (and every mark before it) has played."""
        if name not in self._marks:
            return  # someone else's mark, or one invalidated by a clear
        while self._marks:
            mark, (item, frames) = self._marks.popitem(last=False)
            item.frames_heard = max(item.frames_heard, frames)
            if mark == item.item_id:
                self._awaiting.pop(item.item_id, None)
                self._settle(item, PlaybackStatus.PLAYED)
            if mark == name:
                break
        self._reschedule(self._clock.time())

    def clear(self) -> int:
        """Barge-in: stop, settle every item, send the carrier's ``clear``; how many settled."""
        settled = self._drop_all(PlaybackStatus.INTERRUPTED, error=None)
        if settled and not self._closed:
            self._sink(self._build_clear())
        return settled

    def close(self) -> None:
        """The stream is gone: settle everything without sending anything."""
        self._closed = True
        self._drop_all(PlaybackStatus.INTERRUPTED, error="media stream closed")

    # -- the timer -------------------------------------------------------------------------------

    def _frame_at(self) -> float:
        """When the next frame must be written (its play time minus the lead)."""
        return self._due - self._lead()

    def _lead(self) -> float:
        """The lead now: none while the playing item waits for audio (silence just in time)."""
        if self._queue:
            head = self._queue[0]
            if len(head._buffer) < FRAME_BYTES and not head._source_done:
                return 0.0
        return self.lead_s

    def _reschedule(self, now: float) -> None:
        when: float | None = None
        if self._queue:
            if self._queue[0].started_at is None:
                self._due = max(self._due, now)  # a fresh start after idling
            when = self._frame_at()
        for item in self._awaiting.values():
            if item.mark_deadline is not None and (when is None or item.mark_deadline < when):
                when = item.mark_deadline
        if self._handle is not None:
            if when is not None and when == self._handle_at:
                return
            self._handle.cancel()
            self._handle = None
        if when is not None:
            self._handle_at = when
            self._handle = self._clock.call_at(when, self._tick)

    def _synth_deadline(self, item: PlaybackItem) -> float:
        assert item.started_at is not None and self.synth_timeout_s is not None
        return item.started_at + self.synth_timeout_s

    def _tick(self) -> None:
        self._handle = None
        self.ticks += 1
        now = self._clock.time()
        soon = now + TIMER_SLACK_S
        self._expire_marks(soon)
        if self._due < now - MAX_LATE_S:
            self._due = now  # the loop stalled: resume on a fresh schedule, do not burst
            self.reanchors += 1
        while self._queue and self._due <= soon + self._lead():
            if not self._send_next(now):
                break
            self._due += FRAME_S
        self._reschedule(now)

    def _expire_marks(self, now: float) -> None:
        for item in [
            i
            for i in self._awaiting.values()
            if i.mark_deadline is not None and i.mark_deadline <= now
        ]:
            log.warning(
                "playback %s: mark %s not echoed in time; continuing", self.label, item.item_id
            )
            self._awaiting.pop(item.item_id)
            self._forget_marks(item)
            self._settle(item, PlaybackStatus.MARK_TIMEOUT)

    def _send_next(self, now: float) -> bool:
        """Write the frame due next; False when nothing more can be written this tick."""
        while self._queue:
            item = self._queue[0]
            if item.started_at is None:
                item.started_at = now
            buffer = item._buffer
            if len(buffer) >= FRAME_BYTES or (item._source_done and buffer):
                frame = bytes(buffer[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\xff")
                del buffer[:FRAME_BYTES]
                if not self._write(self._build_media(base64.b64encode(frame).decode("ascii"))):
                    return self._fail_send(item)
                item.frames_sent += 1
                if item.first_frame_at is None:
                    item.first_frame_at = now
                if item.frames_sent % self.progress_mark_frames == 0 and (
                    buffer or not item._source_done
                ):
                    self._send_mark(f"{item.item_id}#{item.frames_sent}", item, item.frames_sent)
                if not buffer and item._source_done:
                    self._finish_item(item, now)
                return True
            if item._source_done:  # synthesis ended after the last frame went out (or gave none)
                if item.frames_sent:
                    self._finish_item(item, now)
                else:
                    self._queue.popleft()
                    error = item._source_error or "TTS returned no audio"
                    self._settle(item, PlaybackStatus.FAILED, error=error)
                    self._prefetch()
                continue  # the next item takes this frame's slot
            if self.synth_timeout_s and item.frames_sent == 0 and now >= self._synth_deadline(item):
                self._queue.popleft()
                self._stop_reader(item)
                self._settle(item, PlaybackStatus.FAILED, error="TTS synthesis timed out")
                self._prefetch()
                continue
            # Synthesis has not caught up: keep the carrier's buffer fed with silence.
            if not self._write(self._build_media(_SILENCE_B64)):
                return self._fail_send(item)
            item.keepalive_frames += 1
            return True
        return False

    def _write(self, text: str) -> bool:
        self.frames_total += 1
        return self._sink(text)

    def _send_mark(self, name: str, item: PlaybackItem, frames: int) -> None:
        if self._sink(self._build_mark(name)):
            self._marks[name] = (item, frames)

    def _finish_item(self, item: PlaybackItem, now: float) -> None:
        """Its last frame is out: send its mark, wait for the echo, play the next item."""
        self._queue.popleft()
        if item._source_error is not None:  # synthesis broke off mid-item
            log.warning("playback %s: %s", self.label, item._source_error)
            self._forget_marks(item)
            self._settle(item, PlaybackStatus.FAILED, error=item._source_error)
            self._prefetch()
            return
        self._send_mark(item.item_id, item, item.frames_sent)
        if item.item_id in self._marks:
            # SPEC §5.4: up to the audio duration + 2 s for the echo
            item.mark_deadline = now + item.frames_sent * FRAME_S + MARK_GRACE_S
            self._awaiting[item.item_id] = item
        else:
            self._settle(item, PlaybackStatus.FAILED, error="mark could not be sent")
        self._prefetch()

    def _fail_send(self, item: PlaybackItem) -> bool:
        log.warning("playback %s: a frame could not be sent; clearing", self.label)
        self._queue.popleft()
        self._stop_reader(item)
        self._forget_marks(item)
        self._settle(item, PlaybackStatus.FAILED, error="media frame could not be sent")
        self.clear()
        return False

    # -- synthesis readers (one Task per item, never per frame) ---------------------------------

    def _prefetch(self) -> None:
        """Synthesise the playing item and the one after it."""
        for item in itertools.islice(self._queue, 2):
            if item._reader is None and not item._source_done:
                item._reader = asyncio.ensure_future(self._read(item))

    async def _read(self, item: PlaybackItem) -> None:
        try:
            async for chunk in item._source:
                starving = len(item._buffer) < FRAME_BYTES
                item._buffer += chunk
                if starving and self._queue and self._queue[0] is item and not self._closed:
                    self._reschedule(self._clock.time())  # audio arrived: send it now
        except asyncio.CancelledError:
            item._source_done = True
            raise
        except Exception as exc:  # a provider failure settles the item, never the engine
            item._source_error = f"TTS synthesis failed: {exc}"
        item._source_done = True

    @staticmethod
    def _stop_reader(item: PlaybackItem) -> None:
        if item._reader is not None and not item._reader.done():
            item._reader.cancel()
        item._source_done = True

    # -- settling --------------------------------------------------------------------------------

    def _forget_marks(self, item: PlaybackItem) -> None:
        for name in [n for n, (i, _) in self._marks.items() if i is item]:
            del self._marks[name]

    def _drop_all(self, playing: PlaybackStatus, error: str | None) -> int:
        settled = 0
        for item in list(self._awaiting.values()):
            self._settle(item, playing, error=error)
            settled += 1
        self._awaiting.clear()
        self._marks.clear()
        while self._queue:
            item = self._queue.popleft()
            self._stop_reader(item)
            started = item.started_at is not None
            self._settle(item, playing if started else PlaybackStatus.SKIPPED, error=error)
            settled += 1
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        return settled

    @staticmethod
    def _settle(item: PlaybackItem, status: PlaybackStatus, *, error: str | None = None) -> None:
        if item._done.done():
            return
        item._done.set_result(
            PlaybackResult(
                item.item_id,
                item.text,
                status,
                item.frames_sent,
                item.frames_heard,
                error,
                item.first_frame_at,
            )
        )


_SILENCE_B64 = base64.b64encode(SILENCE_FRAME).decode("ascii")
