"""Outbound playback over a media stream (SPEC §5.4): paced frames, marks, keep-alive, clear."""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tests.streaming.conftest import MakeHarness

from voicecall.carriers.media_stream import StreamStarted
from voicecall.carriers.twilio.stream import TwilioStreamProtocol
from voicecall.streaming.playback import (
    FRAME_BYTES,
    FRAME_S,
    LEAD_FRAMES,
    MARK_GRACE_S,
    SILENCE_FRAME,
    LoopClock,
    Playback,
    PlaybackQueueFull,
    PlaybackStatus,
)

SID = "MZ" + "1" * 32


@dataclass
class _Timer:
    clock: VirtualClock
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class VirtualClock:
    """A controlled monotonic clock: timers run only when a test advances it."""

    now: float = 1000.0
    _heap: list[tuple[float, int, _Timer]] = field(default_factory=list)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self, when, callback)
        heapq.heappush(self._heap, (when, next(self._order), timer))
        return timer

    @property
    def live_timers(self) -> int:
        return sum(1 for _, _, t in self._heap if not t.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time forward, running due timers in order and letting readers run between."""
        target = self.now + seconds
        await _let_run()
        while self._heap and self._heap[0][0] <= target + 1e-9:
            when, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            self.now = max(self.now, when)
            timer.callback()
            await _let_run()
        self.now = target


async def _let_run() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Sink:
    """A fake carrier socket: records every frame the engine writes."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.broken = False

    def __call__(self, text: str) -> bool:
        if self.broken:
            return False
        self.frames.append(json.loads(text))
        return True

    def media(self) -> list[bytes]:
        return [
            base64.b64decode(f["media"]["payload"]) for f in self.frames if f["event"] == "media"
        ]

    def events(self) -> list[str]:
        return [f["event"] for f in self.frames]

    def marks(self) -> list[str]:
        return [f["mark"]["name"] for f in self.frames if f["event"] == "mark"]


def _protocol() -> TwilioStreamProtocol:
    proto = TwilioStreamProtocol()
    start = {"event": "start", "streamSid": SID, "start": {"streamSid": SID, "callSid": "CA1"}}
    assert isinstance(proto.parse(json.dumps(start)), StreamStarted)
    return proto


def _engine(sink: Sink, clock: VirtualClock, **options: Any) -> Playback:
    proto = _protocol()
    return Playback(
        sink=sink,
        build_media=proto.build_media,
        build_mark=proto.build_mark,
        build_clear=proto.build_clear,
        clock=clock,
        **options,
    )


def _audio(frames: int, seed: int = 0) -> bytes:
    return bytes((seed + i) % 200 for i in range(frames * FRAME_BYTES))


async def _chunks(data: bytes, size: int = 333) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _gated(first: bytes, gate: asyncio.Event, rest: bytes) -> AsyncIterator[bytes]:
    if first:
        yield first
    await gate.wait()
    yield rest


async def test_frames_are_160_bytes_in_order_and_paced_on_an_absolute_schedule() -> None:
    """Audio goes out as exact 160-byte frames, in order, one per 20 ms of clock plus the lead."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    audio = _audio(100) + b"\x01" * 37  # a short tail is padded with silence
    start = clock.now
    playback.enqueue(_chunks(audio), "hello")
    await clock.advance(0)
    assert len(sink.media()) == LEAD_FRAMES + 1  # the first frame plus the lead, at once
    for step in range(1, 60):
        await clock.advance(FRAME_S)
        assert len(sink.media()) == LEAD_FRAMES + 1 + step
    assert abs(playback.next_due - (start + len(sink.media()) * FRAME_S)) < 1e-6
    await clock.advance(2)
    media = sink.media()
    assert all(len(frame) == FRAME_BYTES for frame in media)
    assert b"".join(media) == audio.ljust(101 * FRAME_BYTES, b"\xff")
    assert clock.live_timers <= 1


async def test_item_completes_on_the_mark_echo_and_its_mark_follows_its_audio() -> None:
    """Each item ends with a mark named by its id; it completes only when the carrier echoes it."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    first = playback.enqueue(_chunks(_audio(10)), "one")
    second = playback.enqueue(_chunks(_audio(5, 7)), "two")
    await clock.advance(0.5)
    events = sink.events()
    assert events == ["media"] * 10 + ["mark"] + ["media"] * 5 + ["mark"]
    assert sink.marks() == [first.item_id, second.item_id]
    assert not first.done and playback.speaking
    playback.on_mark(first.item_id)
    result = first.result()
    assert result.status is PlaybackStatus.PLAYED
    assert (result.frames_sent, result.frames_heard, result.heard_text) == (10, 10, "one")
    assert not second.done
    playback.on_mark(second.item_id)
    assert second.result().status is PlaybackStatus.PLAYED
    assert not playback.speaking


async def test_mark_timeout_completes_an_item_whose_echo_never_comes() -> None:
    """Without an echo the item completes after its audio duration plus the 2 s grace."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    item = playback.enqueue(_chunks(_audio(50)), "no echo")
    await clock.advance(50 * FRAME_S)
    assert item.mark_deadline is not None
    assert item.mark_deadline >= clock.now + MARK_GRACE_S  # audio duration + 2 s after the mark
    await clock.advance(item.mark_deadline - clock.now - 0.01)
    assert not item.done
    await clock.advance(0.02)
    result = item.result()
    assert result.status is PlaybackStatus.MARK_TIMEOUT
    assert result.frames_sent == 50
    assert not playback.speaking


async def test_silence_keeps_the_stream_fed_while_synthesis_lags() -> None:
    """Until audio arrives (and during a mid-item stall) the carrier gets silence every 20 ms."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    gate = asyncio.Event()
    audio = _audio(4)
    item = playback.enqueue(_gated(b"", gate, audio), "slow")
    await clock.advance(10 * FRAME_S)
    # One silence frame at once and one per 20 ms, just in time: no silence queued ahead.
    assert sink.media() == [SILENCE_FRAME] * 11
    assert abs(playback.next_due - (clock.now + FRAME_S)) < 1e-9
    gate.set()
    await clock.advance(0)  # audio arrived between ticks: it goes out now, with the lead
    assert b"".join(sink.media()[11:]) == audio[: LEAD_FRAMES * FRAME_BYTES]
    await clock.advance(10 * FRAME_S)
    assert b"".join(sink.media()[-4:]) == audio
    playback.on_mark(item.item_id)
    result = item.result()
    assert result.status is PlaybackStatus.PLAYED and result.frames_sent == 4


async def test_first_audio_plays_after_at_most_one_queued_silence_frame() -> None:
    """When synthesis is slow the caller hears its first audio within one frame slot of its
    arrival: only silence already due was sent, so nothing stands ahead of it (with a silence
    lead the wait would be up to LEAD_FRAMES more frames)."""
    for arrival in (0.005, 0.013, 0.0199, 0.137):
        sink, clock = Sink(), VirtualClock()
        playback = _engine(sink, clock)
        gate = asyncio.Event()
        start = clock.now
        playback.enqueue(_gated(b"", gate, _audio(10)), "slow")
        await clock.advance(arrival)
        silence = len(sink.media())
        gate.set()
        await clock.advance(0)
        # Frame k plays at start + k × 20 ms: the first audio frame is frame `silence`.
        plays_at = start + silence * FRAME_S
        assert sink.media()[silence] != SILENCE_FRAME
        assert 0 <= plays_at - clock.now <= FRAME_S + 1e-9


async def test_a_synthesis_stall_mid_item_is_filled_without_dropping_the_schedule() -> None:
    """A stall between chunks inserts silence frames; the frame count still tracks the clock."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    gate = asyncio.Event()
    playback.enqueue(_gated(_audio(3), gate, _audio(3, 9)), "stall")
    await clock.advance(0.2)
    frames_before = len(sink.media())
    assert sink.media()[3:] == [SILENCE_FRAME] * (frames_before - 3)
    gate.set()
    await clock.advance(0.2)
    assert len(sink.media()) == frames_before + 3  # the rest followed, nothing more


async def test_the_queue_limit_refuses_the_ninth_item() -> None:
    """At most 8 unsettled items; the next one is refused with a clear error."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    for n in range(8):
        playback.enqueue(_chunks(_audio(2)), f"item {n}")
    try:
        playback.enqueue(_chunks(_audio(2)), "one too many")
    except PlaybackQueueFull as exc:
        assert str(exc) == "Telephony TTS queue is full"
    else:
        raise AssertionError("the ninth item was accepted")


async def test_clear_mid_item_stops_frames_sends_clear_and_settles_everything() -> None:
    """Clear sends the carrier's clear, no further frames of the item, and queued items skip."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    playing = playback.enqueue(_chunks(_audio(100)), "a long answer that goes on")
    queued = [playback.enqueue(_chunks(_audio(10)), f"next {n}") for n in range(3)]
    await clock.advance(0.3)
    sent = len(sink.media())
    assert playback.clear() == 4
    assert sink.events()[-1] == "clear"
    await clock.advance(3)
    assert len(sink.media()) == sent
    assert sink.events()[-1] == "clear"
    result = playing.result()
    assert result.status is PlaybackStatus.INTERRUPTED and result.frames_sent == sent
    assert [q.result().status for q in queued] == [PlaybackStatus.SKIPPED] * 3
    assert clock.live_timers == 0


async def test_heard_frames_come_from_acknowledged_progress_marks() -> None:
    """After an interruption the result says how much was heard and cuts the text there."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock, progress_mark_frames=10)
    text = "one two three four five six seven eight nine ten"
    item = playback.enqueue(_chunks(_audio(100)), text)
    await clock.advance(0.5)
    progress = sink.marks()
    assert progress[:2] == [f"{item.item_id}#10", f"{item.item_id}#20"]
    playback.on_mark(progress[1])  # the carrier played 20 frames, then the caller spoke
    playback.clear()
    result = item.result()
    assert (result.frames_sent, result.frames_heard) == (25 + LEAD_FRAMES + 1, 20)
    assert text.startswith(result.heard_text) and 0 < len(result.heard_text) < len(text)


async def test_a_frame_that_cannot_be_sent_fails_the_item_and_skips_the_rest() -> None:
    """A dead socket fails the playing item; queued items settle as skipped."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    playing = playback.enqueue(_chunks(_audio(20)), "x")
    queued = playback.enqueue(_chunks(_audio(20)), "y")
    await clock.advance(0.1)
    sink.broken = True
    await clock.advance(0.1)
    assert playing.result().status is PlaybackStatus.FAILED
    assert queued.result().status is PlaybackStatus.SKIPPED


async def test_empty_synthesis_fails_the_item_and_the_next_one_plays() -> None:
    """A source that yields no audio fails its item without a mark; the queue moves on."""
    sink, clock = Sink(), VirtualClock()
    playback = _engine(sink, clock)
    empty = playback.enqueue(_chunks(b""), "nothing")
    after = playback.enqueue(_chunks(_audio(3)), "something")
    await clock.advance(0.2)
    result = empty.result()
    assert result.status is PlaybackStatus.FAILED and result.error == "TTS returned no audio"
    assert sink.marks() == [after.item_id]


# -- through a real media websocket ----------------------------------------------------------


async def _read_until_mark(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            frame: dict[str, Any] = json.loads(msg.data)
            out.append(frame)
            if frame["event"] == "mark" and "#" not in frame["mark"]["name"]:
                return out


async def test_twilio_media_socket_receives_paced_frames_and_the_mark_echo_completes(
    make_harness: MakeHarness,
) -> None:
    """Over a real Twilio stream the carrier gets the audio in frames, then a mark; echo ends it."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        call_id = h.record(sid).call_id
        assert h.gateway.streams is not None
        await h.until(lambda: any(s.call_id == call_id for s in h.gateway.streams.streams()))
        stream = next(s for s in h.gateway.streams.streams() if s.call_id == call_id)
        audio = _audio(30)
        item = stream.playback.enqueue(_chunks(audio), "over the wire")
        assert media.ws is not None
        received = await _read_until_mark(media.ws)
        payloads = [
            base64.b64decode(f["media"]["payload"]) for f in received if f["event"] == "media"
        ]
        audio_frames = [p for p in payloads if p != SILENCE_FRAME]
        assert b"".join(audio_frames) == audio
        assert received[-1] == {
            "event": "mark",
            "streamSid": media.stream_sid,
            "mark": {"name": item.item_id},
        }
        assert not item.done
        await media.send(
            {"event": "mark", "streamSid": media.stream_sid, "mark": {"name": item.item_id}}
        )
        result = await asyncio.wait_for(item.wait(), 20)
        assert result.status is PlaybackStatus.PLAYED and result.frames_heard == 30


async def test_twilio_media_socket_receives_clear_and_no_more_frames_after_it(
    make_harness: MakeHarness,
) -> None:
    """Clearing mid-item over a real stream sends Twilio's clear and stops that item's frames."""
    h = await make_harness("deepgram")
    sid, doc = await h.inbound_call()
    async with h.media(doc.url) as media:
        await media.start(sid, doc.token)
        call_id = h.record(sid).call_id
        assert h.gateway.streams is not None
        await h.until(lambda: any(s.call_id == call_id for s in h.gateway.streams.streams()))
        stream = next(s for s in h.gateway.streams.streams() if s.call_id == call_id)
        item = stream.playback.enqueue(_chunks(_audio(500)), "a very long reply")
        assert media.ws is not None
        async with asyncio.timeout(20):
            while (await media.ws.receive()).type == aiohttp.WSMsgType.TEXT:
                if item.frames_sent >= 10:
                    break
        stream.playback.clear()
        sent = item.frames_sent
        # A next reply is the marker: between the clear and its audio nothing of the first item.
        marker = b"\x55" * (5 * FRAME_BYTES)
        follow = stream.playback.enqueue(_chunks(marker), "next")
        received = await _read_until_mark(media.ws)
        events = [f["event"] for f in received]
        after = received[events.index("clear") + 1 :]
        payloads = [base64.b64decode(f["media"]["payload"]) for f in after if "media" in f]
        assert b"".join(p for p in payloads if p != SILENCE_FRAME) == marker
        assert after[-1]["mark"]["name"] == follow.item_id
        assert (await item.wait()).status is PlaybackStatus.INTERRUPTED
        assert item.frames_sent == sent


def test_under_uvloop_the_engine_ticks_about_once_per_frame() -> None:
    """uvloop rounds timers to milliseconds: the engine must not spin re-arming a timer that
    fires a hair early (it once ran ~200 ticks per frame). Counts, not timings: a slow machine
    only means fewer ticks (several frames per tick)."""
    import uvloop

    async def play() -> tuple[int, int]:
        sink = Sink()
        playback = _engine(sink, LoopClock())
        item = playback.enqueue(_chunks(_audio(25)), "half a second")
        while not sink.marks():
            await asyncio.sleep(0.01)
        playback.on_mark(item.item_id)
        await item.wait()
        return playback.ticks, len(sink.media())

    ticks, frames = uvloop.run(play())
    assert frames == 25
    assert ticks <= 2 * frames + 5
