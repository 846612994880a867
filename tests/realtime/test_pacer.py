"""The realtime outbound pacer (SPEC §7.5, §7.7): cushioned frames, playout marks, confirmed
play-out per response item, overflow, barge-in clear, farewell drain, stall re-anchoring."""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.streaming.test_playback import Sink, VirtualClock, _protocol

from voicecall.realtime.pacer import (
    LEAD_FRAMES,
    MARK_EVERY_FRAMES,
    MAX_PENDING_MARKS,
    MAX_SEGMENTS,
    QUEUE_CAP_BYTES,
    RealtimePacer,
)
from voicecall.streaming.playback import FRAME_BYTES, FRAME_S, MARK_GRACE_S, SILENCE_FRAME

CUSHION = LEAD_FRAMES + 1  # the frame due now and the 160 ms written ahead of it
MARK_NAME = re.compile(r"^playout-(?P<uuid>[0-9a-f-]{36})-(?P<n>[1-9][0-9]*)$")


def _pacer(sink: Sink, clock: VirtualClock, **options: Any) -> RealtimePacer:
    proto = _protocol()
    return RealtimePacer(
        sink=sink,
        build_media=proto.build_media,
        build_mark=proto.build_mark,
        build_clear=proto.build_clear,
        clock=clock,
        **options,
    )


def _audio(frames: float, seed: int = 0) -> bytes:
    return bytes((seed + i) % 251 for i in range(round(frames * FRAME_BYTES)))


def _push_chunks(pacer: RealtimePacer, data: bytes, item_id: str | None, size: int = 333) -> None:
    for start in range(0, len(data), size):
        assert pacer.push(data[start : start + size], item_id)


def _ms(frames: int) -> int:
    return frames * 20


async def test_frames_are_exact_in_order_and_paced_with_a_160ms_cushion() -> None:
    """Audio goes out as 160-byte frames in order: 160 ms of it at once, then one per 20 ms."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    audio = _audio(60) + b"\x01" * 37
    start = clock.now
    _push_chunks(pacer, audio, "item-a")
    await clock.advance(0)
    assert len(sink.media()) == CUSHION
    for step in range(1, 40):
        await clock.advance(FRAME_S)
        assert len(sink.media()) == CUSHION + step
    assert abs(pacer.next_due - (start + len(sink.media()) * FRAME_S)) < 1e-6
    await clock.advance(1)
    media = sink.media()
    assert len(media) == 60  # the 37-byte tail waits for more audio of the response
    assert pacer.queued_bytes == 37
    pacer.flush()  # the response is done: the tail goes out padded with µ-law silence
    await clock.advance(FRAME_S)
    media = sink.media()
    assert all(len(frame) == FRAME_BYTES for frame in media)
    assert b"".join(media) == audio.ljust(61 * FRAME_BYTES, b"\xff")
    assert clock.live_timers <= 1


async def test_no_keepalive_silence_while_the_model_is_quiet() -> None:
    """Unlike classic playback, nothing is written while no audio is queued."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(3), "a")
    await clock.advance(2)
    assert len(sink.media()) == 3
    assert SILENCE_FRAME not in sink.media()
    assert clock.live_timers == 0


async def test_audio_after_an_underrun_starts_a_fresh_cushion_and_continues_seamlessly() -> None:
    """Audio arriving while earlier audio still plays continues its schedule; after the carrier
    ran dry it starts again from now with the cushion."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(20), "a")
    await clock.advance(0.1)  # 9 + 5 frames written; 14 × 20 ms of audio ahead of the start
    due = pacer.next_due
    pacer.push(_audio(2, 9), "a")
    await clock.advance(0)
    assert pacer.next_due == due  # no jump: it simply continues
    await clock.advance(2)  # everything played, the carrier is dry
    pacer.push(_audio(20, 3), "b")
    resumed = clock.now
    before = len(sink.media())
    await clock.advance(0)
    assert len(sink.media()) - before == CUSHION
    assert abs(pacer.next_due - (resumed + CUSHION * FRAME_S)) < 1e-9


async def test_a_mark_follows_every_160ms_of_sent_audio_and_the_end_of_a_response() -> None:
    """Marks ``playout-<uuid>-<n>`` go out after frames 8, 16, … and after a flushed tail."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    _push_chunks(pacer, _audio(50), "item-a", size=517)
    pacer.flush()
    await clock.advance(2)
    events = sink.events()
    assert events == (["media"] * 8 + ["mark"]) * 6 + ["media"] * 2 + ["mark"]
    names = sink.marks()
    matches = [MARK_NAME.match(name) for name in names]
    assert all(matches)
    ids = {m["uuid"] for m in matches if m}
    assert len(ids) == 1 and uuid.UUID(ids.pop()).version == 4
    assert [int(m["n"]) for m in matches if m] == list(range(1, 8))
    assert pacer.pending_marks == tuple(names)
    assert MARK_EVERY_FRAMES * 20 == 160


async def test_marks_count_audio_across_items_and_another_pacer_uses_another_uuid() -> None:
    """The 160 ms count runs over the continuous stream, not per item; names never collide."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(5), "a")
    pacer.push(_audio(5), "b")
    pacer.push(_audio(6), "c")
    await clock.advance(1)
    assert sink.events() == ["media"] * 8 + ["mark"] + ["media"] * 8 + ["mark"]
    other = _pacer(Sink(), VirtualClock())
    assert other.mark_prefix != pacer.mark_prefix


async def test_echoed_marks_confirm_played_ms_per_item_and_unknown_names_are_ignored() -> None:
    """An echo confirms the audio before its mark (and every earlier mark); play-out is counted
    per response item even when a frame holds the end of one item and the start of the next."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    first = _audio(15) + b"\x02" * 10  # 301.25 ms: the next item starts mid-frame
    pacer.push(first, "item-a")
    pacer.push(_audio(25, 5)[:-10], "item-b")  # 498.75 ms
    pacer.flush()
    await clock.advance(1)
    names = sink.marks()
    assert len(names) == 5  # after 8, 16, 24, 32 and the tail at 40 frames
    assert (pacer.confirmed_ms("item-a"), pacer.confirmed_ms("item-b")) == (0, 0)

    assert pacer.on_mark(names[0])
    assert (pacer.confirmed_ms("item-a"), pacer.confirmed_ms("item-b")) == (_ms(8), 0)

    for stranger in ("tts-1700000000000-1", "playout-not-ours-1", names[0], ""):
        assert not pacer.on_mark(stranger)
    assert (pacer.confirmed_ms("item-a"), pacer.confirmed_ms("item-b")) == (_ms(8), 0)

    assert pacer.on_mark(names[2])  # the carrier echoed #3: #2 has played too
    assert pacer.pending_marks == tuple(names[3:])
    assert pacer.confirmed_ms("item-a") == len(first) // 8 == 301
    assert pacer.confirmed_ms("item-b") == (24 * FRAME_BYTES - len(first)) // 8
    assert not pacer.on_mark(names[1])  # already implied

    assert pacer.on_mark(names[4])
    assert (pacer.confirmed_ms("item-a"), pacer.confirmed_ms("item-b")) == (301, 498)
    assert pacer.confirmed_ms("never-seen") == 0


async def test_the_queue_overflows_past_960000_bytes() -> None:
    """120 s may be queued; a byte more is refused (the bridge closes the socket with 1013)."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    assert QUEUE_CAP_BYTES == 960_000
    for _ in range(QUEUE_CAP_BYTES // 8000):
        assert pacer.push(b"\x10" * 8000, "long")
    assert pacer.queued_bytes == QUEUE_CAP_BYTES and not pacer.overflowed
    assert not pacer.push(b"\x10", "long")
    assert pacer.overflowed
    assert pacer.queued_bytes == QUEUE_CAP_BYTES  # the refused audio was not queued
    await clock.advance(0)  # the cushion goes out: room for exactly that much again
    assert pacer.queued_bytes == QUEUE_CAP_BYTES - CUSHION * FRAME_BYTES
    assert pacer.push(b"\x10" * (CUSHION * FRAME_BYTES), "long")
    assert not pacer.push(b"\x10", "long")
    big = _pacer(Sink(), VirtualClock())
    assert not big.push(bytes(QUEUE_CAP_BYTES + 1), "huge")
    assert big.queued_bytes == 0


async def test_clear_drops_the_queue_sends_one_clear_and_reports_the_item_heard() -> None:
    """Barge-in: the item being played and how much of it the carrier confirmed; one ``clear``;
    nothing more goes out; a second clear with nothing playing sends nothing."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(50), "item-a")
    await clock.advance(0.3)
    names = sink.marks()
    assert len(names) == 3
    pacer.on_mark(names[1])
    sent = len(sink.media())
    result = pacer.clear()
    assert (result.item_id, result.confirmed_ms, result.sent_clear) == ("item-a", _ms(16), True)
    assert result.dropped_bytes == (50 - sent) * FRAME_BYTES
    assert sink.events()[-1] == "clear" and sink.events().count("clear") == 1
    assert pacer.pending_marks == () and pacer.queued_bytes == 0
    assert not pacer.on_mark(names[2])  # forgotten by the clear
    await clock.advance(2)
    assert len(sink.media()) == sent and sink.events().count("clear") == 1
    again = pacer.clear()
    assert (again.item_id, again.confirmed_ms, again.sent_clear) == (None, 0, False)
    assert sink.events().count("clear") == 1
    assert pacer.confirmed_ms("item-a") == _ms(16)  # still answerable after the clear


async def test_clear_reports_the_item_playing_not_the_one_queued_behind_it() -> None:
    """With item A playing and B queued, A is what the caller was hearing."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(30), "item-a")
    pacer.push(_audio(30), "item-b")
    await clock.advance(0.2)
    pacer.on_mark(sink.marks()[0])
    result = pacer.clear()
    assert (result.item_id, result.confirmed_ms) == ("item-a", _ms(8))
    fresh = _pacer(Sink(), VirtualClock())
    fresh.push(_audio(3), "queued")
    queued = fresh.clear()  # nothing written yet: the queued item was "playing" 0 ms of it
    assert (queued.item_id, queued.confirmed_ms, queued.sent_clear) == ("queued", 0, True)


async def test_an_idle_clear_sends_nothing_and_audio_after_a_clear_plays_at_once() -> None:
    """An idle clear is silent; audio after a clear starts a fresh cushion at once."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    result = pacer.clear()
    assert (result.item_id, result.sent_clear, result.dropped_bytes) == (None, False, 0)
    assert sink.frames == []
    pacer.push(_audio(40), "a")
    await clock.advance(0.1)
    pacer.clear()
    pacer.push(_audio(40, 1), "b")
    before = len(sink.media())
    await clock.advance(0)
    assert len(sink.media()) - before == CUSHION
    assert sink.media()[before] == _audio(40, 1)[:FRAME_BYTES]


async def test_at_most_128_item_segments_are_remembered() -> None:
    """The oldest item segments are forgotten first: their play-out is no longer reported."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    items = [f"item-{i}" for i in range(MAX_SEGMENTS + 2)]
    for item in items:
        pacer.push(_audio(1), item)
    pacer.flush()
    await clock.advance(5)
    assert pacer.on_mark(sink.marks()[-1])
    assert [pacer.confirmed_ms(item) for item in items[:2]] == [0, 0]
    assert {pacer.confirmed_ms(item) for item in items[2:]} == {20}


async def test_at_most_64_pending_marks_are_remembered() -> None:
    """Unechoed marks beyond 64 push the oldest out: an echo of a forgotten mark is ignored."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    extra = 6
    pacer.push(_audio((MAX_PENDING_MARKS + extra) * MARK_EVERY_FRAMES), "long")
    await clock.advance(20)
    names = sink.marks()
    assert len(names) == MAX_PENDING_MARKS + extra
    assert pacer.pending_marks == tuple(names[extra:])
    assert not pacer.on_mark(names[extra - 1])
    assert pacer.confirmed_ms("long") == 0
    assert pacer.on_mark(names[extra])
    assert pacer.confirmed_ms("long") == _ms((extra + 1) * MARK_EVERY_FRAMES)


async def test_drain_completes_once_everything_is_sent_and_the_last_mark_echoed() -> None:
    """The farewell drain: flushes, waits for the last frame and the echo of the last mark."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(12) + b"\x03" * 50, "bye")
    outcomes: list[bool] = []
    pacer.drain(outcomes.append)
    await clock.advance(1)
    assert len(sink.media()) == 13 and pacer.queued_bytes == 0
    names = sink.marks()
    assert len(names) == 2  # after 8 frames and after the padded last one
    assert pacer.on_mark(names[0])
    assert outcomes == []
    assert pacer.on_mark(names[1])
    assert outcomes == [True]
    await clock.advance(30)
    assert outcomes == [True]  # exactly once
    assert clock.live_timers == 0


async def test_drain_gives_up_after_the_queued_duration_plus_2s() -> None:
    """Without echoes the drain ends (False) once the queued audio + 2 s have passed."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(50), "bye")  # 1 s
    outcomes: list[bool] = []
    pacer.drain(outcomes.append)
    await clock.advance(1.0 + MARK_GRACE_S - 0.01)
    assert outcomes == []
    await clock.advance(0.02)
    assert outcomes == [False]


async def test_drain_is_capped_by_farewell_max_wait() -> None:
    """A long queue is not waited for longer than ``farewellMaxWaitMs``."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(50 * 100), "monologue")  # 100 s
    outcomes: list[bool] = []
    pacer.drain(outcomes.append, max_wait_ms=4000)
    await clock.advance(3.99)
    assert outcomes == []
    await clock.advance(0.02)
    assert outcomes == [False]


async def test_drain_of_an_idle_pacer_completes_at_once_and_clear_or_close_end_a_drain() -> None:
    """Nothing to play: done now. A barge-in or a closed stream ends a waiting drain (False)."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    outcomes: list[bool] = []
    pacer.drain(outcomes.append)
    assert outcomes == [True]
    pacer.push(_audio(20), "a")
    pacer.drain(outcomes.append)
    await clock.advance(0.1)
    pacer.clear()
    assert outcomes == [True, False]
    pacer.push(_audio(20), "b")
    pacer.drain(outcomes.append)
    pacer.close()
    assert outcomes == [True, False, False]
    pacer.drain(outcomes.append)
    assert outcomes == [True, False, False, False]
    assert pacer.push(_audio(1), "late") and pacer.queued_bytes == 0


async def test_a_loop_stall_reanchors_the_schedule_instead_of_bursting() -> None:
    """After the loop was blocked for a second only the cushion goes out, not a second of
    backlog, and pacing continues from the new anchor."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(200), "a")
    await clock.advance(0.1)
    before = len(sink.media())
    clock.now += 1.0  # the loop was blocked: no timer ran
    await clock.advance(0)
    assert len(sink.media()) - before == CUSHION
    assert pacer.reanchors == 1
    assert abs(pacer.next_due - (clock.now + CUSHION * FRAME_S)) < 1e-9
    await clock.advance(10 * FRAME_S)
    assert len(sink.media()) - before == CUSHION + 10
    assert pacer.reanchors == 1
    assert b"".join(sink.media()) == _audio(200)[: len(sink.media()) * FRAME_BYTES]


async def test_first_audio_time_is_when_the_first_frame_was_written() -> None:
    """``first_audio_ms`` measures from a given clock time (the carrier start) to frame one."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    started = pacer.now()
    assert pacer.first_audio_ms(started) is None
    await clock.advance(0.25)
    pacer.push(_audio(0.5), "a")
    await clock.advance(0.5)
    assert pacer.first_audio_ms(started) is None  # half a frame is not a frame yet
    pacer.push(_audio(0.5), "a")
    await clock.advance(0)
    assert pacer.first_audio_ms(started) == 750
    pacer.push(_audio(5), "a")
    await clock.advance(1)
    assert pacer.first_audio_ms(started) == 750


async def test_a_frame_the_sink_cannot_send_drops_the_queue() -> None:
    """A dead socket: the queue is dropped (no retry storm) and the failure is counted."""
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)
    pacer.push(_audio(30), "a")
    await clock.advance(0.1)
    sink.broken = True
    await clock.advance(FRAME_S)
    assert pacer.send_failures == 1 and pacer.queued_bytes == 0
    assert clock.live_timers == 0


def _play(chunks: list[bytes]) -> tuple[list[bytes], list[str]]:
    sink, clock = Sink(), VirtualClock()
    pacer = _pacer(sink, clock)

    async def run() -> None:
        for chunk in chunks:
            assert pacer.push(chunk, "item")
        pacer.flush()
        await clock.advance(len(b"".join(chunks)) / 8000 + 1)

    asyncio.run(run())
    return sink.media(), sink.events()


@settings(max_examples=60, deadline=None)
@given(
    audio=st.binary(min_size=0, max_size=12 * FRAME_BYTES),
    cuts=st.lists(st.integers(min_value=0, max_value=12 * FRAME_BYTES), max_size=20),
)
def test_any_chunking_of_the_same_audio_yields_identical_frames(
    audio: bytes, cuts: list[int]
) -> None:
    """However the provider chunks the same audio, the carrier gets the same frames and marks."""
    bounds = sorted({0, len(audio), *(c for c in cuts if c <= len(audio))})
    chunks = [audio[a:b] for a, b in itertools.pairwise(bounds)]
    media, events = _play(chunks)
    whole_media, whole_events = _play([audio])
    assert media == whole_media and events == whole_events
    padded = -(-len(audio) // FRAME_BYTES) * FRAME_BYTES
    assert b"".join(media) == audio.ljust(padded, b"\xff")
