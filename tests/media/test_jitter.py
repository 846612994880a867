"""Jitter buffer: the compiled kernel and the pure-Python reference behave the same, exactly."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.media import jitter as compiled
from voicecall.media.ref import g711 as ref_g711
from voicecall.media.ref import jitter as reference

ULAW_SILENCE = b"\xff" * 160


@pytest.fixture(params=[compiled, reference], ids=["c", "py"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The jitter buffer implementation under test."""
    module: ModuleType = request.param
    return module


def frame(seq: int, size: int = 160) -> bytes:
    """A recognisable, loud u-law frame for a sequence number (never silence)."""
    return bytes([seq % 100 + 10]) * size


def feed(jb: Any, seqs: list[int]) -> None:
    """Push the frames for `seqs` in the order given, with RTP-style timestamps."""
    for seq in seqs:
        jb.push(seq, seq * 160, frame(seq))


def energy(payload: bytes) -> int:
    """Sum of squared decoded samples of a u-law frame."""
    return sum(ref_g711.ulaw_decode_sample(b) ** 2 for b in payload)


def test_silence_until_primed_then_in_order(impl: ModuleType) -> None:
    """Pops give silence until target_depth frames are in, then the frames in order."""
    jb = impl.JitterBuffer(target_depth=3)
    feed(jb, [10, 11])
    assert jb.pop() == ULAW_SILENCE and not jb.primed
    feed(jb, [12])
    assert jb.primed
    assert [jb.pop() for _ in range(3)] == [frame(10), frame(11), frame(12)]
    assert jb.last_timestamp == 12 * 160
    assert jb.stats == (3, 0, 0, 0, 0, 0, 0)


def test_reordering_is_undone(impl: ModuleType) -> None:
    """Frames arriving out of order within the buffer depth play in sequence order, nothing lost."""
    jb = impl.JitterBuffer(target_depth=3)
    feed(jb, [1, 0, 3, 2, 5, 4, 6])
    assert [jb.pop() for _ in range(7)] == [frame(s) for s in range(7)]
    assert jb.stats.lost == 0 and jb.stats.late == 0


def test_single_loss_is_concealed_with_a_fade(impl: ModuleType) -> None:
    """A missing frame is replaced by a quieter copy of the previous one, then playout resumes."""
    jb = impl.JitterBuffer(target_depth=2)
    feed(jb, [0, 1, 3, 4])
    out = [jb.pop() for _ in range(5)]
    assert out[:2] == [frame(0), frame(1)] and out[3:] == [frame(3), frame(4)]
    assert out[2] != ULAW_SILENCE
    assert 0 < energy(out[2]) < energy(frame(1))
    stats = jb.stats
    assert (stats.lost, stats.concealed, stats.received, stats.depth) == (1, 1, 4, 0)


def test_long_loss_fades_to_silence(impl: ModuleType) -> None:
    """After fade_frames of shrinking repeats, a long outage plays u-law silence (0xFF)."""
    jb = impl.JitterBuffer(target_depth=1, fade_frames=3)
    feed(jb, [0])
    jb.pop()
    out = [jb.pop() for _ in range(6)]
    levels = [energy(f) for f in out]
    assert levels[0] > levels[1] > levels[2] > 0
    assert out[3:] == [ULAW_SILENCE] * 3
    assert jb.stats.concealed == 6 and jb.stats.lost == 6


def test_pcm16_fade_is_a_linear_ramp(impl: ModuleType) -> None:
    """In PCM16 the concealment ramps the last frame linearly to zero; silence is zeros."""
    last = (1000).to_bytes(2, "little", signed=True) * 4
    jb = impl.JitterBuffer(frame_bytes=8, target_depth=1, encoding="pcm16", fade_frames=2)
    jb.push(0, 0, last)
    assert jb.pop() == last
    faded = jb.pop() + jb.pop()
    ramp = [int.from_bytes(faded[i : i + 2], "little", signed=True) for i in range(0, 16, 2)]
    assert ramp == [1000, 875, 750, 625, 500, 375, 250, 125]
    assert jb.pop() == b"\x00" * 8


def test_late_frame_is_dropped(impl: ModuleType) -> None:
    """A frame arriving after its slot was concealed is counted late and never played."""
    jb = impl.JitterBuffer(target_depth=1)
    feed(jb, [0, 2])
    assert jb.pop() == frame(0)
    concealed = jb.pop()
    feed(jb, [1])
    assert jb.pop() == frame(2)
    assert concealed != frame(1)
    assert (jb.stats.late, jb.stats.lost, jb.stats.duplicate) == (1, 1, 0)


def test_duplicates_are_dropped(impl: ModuleType) -> None:
    """The same frame pushed again, before or after it played, is counted once as duplicate each."""
    jb = impl.JitterBuffer(target_depth=2)
    feed(jb, [0, 0, 1])
    assert jb.pop() == frame(0)
    feed(jb, [0])
    assert jb.pop() == frame(1)
    assert jb.stats.duplicate == 2
    assert jb.stats.late == 0


def test_sequence_wraps_around(impl: ModuleType) -> None:
    """Sequence numbers continue across 65535 -> 0, also when reordered across the wrap."""
    jb = impl.JitterBuffer(target_depth=3)
    seqs = [65533, 65535, 65534, 1, 0, 2, 3]
    feed(jb, seqs)
    order = [65533, 65534, 65535, 0, 1, 2, 3]
    assert [jb.pop() for _ in order] == [frame(s) for s in order]
    assert jb.stats.lost == 0 and jb.stats.late == 0
    assert jb.playout_seq == 4


def test_burst_after_a_stall(impl: ModuleType) -> None:
    """After a stall, a burst's overdue frames are late and the rest play without added delay."""
    jb = impl.JitterBuffer(target_depth=2)
    feed(jb, [0, 1, 2])
    played = [jb.pop() for _ in range(3)]
    played += [jb.pop() for _ in range(5)]  # the network stalls for 100 ms: seq 3..7 concealed
    feed(jb, list(range(3, 12)))  # then everything arrives at once
    played += [jb.pop() for _ in range(4)]
    assert played[:3] == [frame(0), frame(1), frame(2)]
    assert played[8:] == [frame(8), frame(9), frame(10), frame(11)]
    stats = jb.stats
    assert (stats.late, stats.lost, stats.concealed, stats.depth) == (5, 5, 5, 0)


def test_frame_far_ahead_moves_playout_forward(impl: ModuleType) -> None:
    """A frame capacity or more ahead discards what it skips and keeps the latency bounded."""
    jb = impl.JitterBuffer(target_depth=2, capacity=8)
    feed(jb, [0, 1, 2, 3])
    feed(jb, [10])  # playout moves to 3 so that 10 fits in 8 slots
    assert jb.playout_seq == 3
    stats = jb.stats
    assert (stats.overflow, stats.lost, stats.depth) == (3, 0, 2)
    assert jb.pop() == frame(3)


def test_first_frames_may_arrive_out_of_order(impl: ModuleType) -> None:
    """Before playout begins, an earlier sequence number moves the start back, not counted late."""
    jb = impl.JitterBuffer(target_depth=3)
    feed(jb, [7, 5, 6])
    assert jb.playout_seq == 5
    assert [jb.pop() for _ in range(3)] == [frame(5), frame(6), frame(7)]
    assert jb.stats.late == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"frame_bytes": 0}, "frame_bytes"),
        ({"frame_bytes": 161, "encoding": "pcm16"}, "frame_bytes"),
        ({"capacity": 48}, "capacity"),
        ({"target_depth": 0}, "target_depth"),
        ({"target_depth": 65}, "target_depth"),
        ({"encoding": "opus"}, "encoding"),
        ({"fade_frames": -1}, "fade_frames"),
    ],
)
def test_bad_arguments_name_the_value(impl: ModuleType, kwargs: dict[str, Any], name: str) -> None:
    """Each invalid constructor argument raises ValueError naming it and its value."""
    with pytest.raises(ValueError, match=name) as info:
        impl.JitterBuffer(**kwargs)
    assert repr(kwargs[name]) in str(info.value)


@pytest.mark.parametrize(
    ("args", "name"),
    [((70000, 0, frame(0)), "seq"), ((1, -1, frame(0)), "timestamp"), ((1, 0, b"x"), "payload")],
)
def test_bad_push_names_the_value(impl: ModuleType, args: tuple[Any, ...], name: str) -> None:
    """An out-of-range seq or timestamp, or a payload of the wrong size, raises ValueError."""
    jb = impl.JitterBuffer()
    with pytest.raises(ValueError, match=name):
        jb.push(*args)
    assert jb.stats.received == 0


op = st.one_of(
    st.tuples(st.just("push"), st.integers(-4, 12), st.integers(0, 3)),
    st.tuples(st.just("jump"), st.integers(-40000, 40000), st.integers(0, 3)),
    st.tuples(st.just("pop"), st.just(0), st.just(0)),
)


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(op, max_size=120),
    start=st.integers(0, 65535),
    encoding=st.sampled_from(["ulaw", "pcm16"]),
    capacity=st.sampled_from([2, 4, 8, 16]),
    target_depth=st.integers(1, 4),
    fade_frames=st.integers(0, 4),
    data=st.data(),
)
def test_compiled_matches_reference(
    ops: list[tuple[str, int, int]],
    start: int,
    encoding: str,
    capacity: int,
    target_depth: int,
    fade_frames: int,
    data: st.DataObject,
) -> None:
    """Under random loss, reordering, duplication, jumps and pops both give identical output."""
    kwargs = {
        "frame_bytes": 6,
        "capacity": capacity,
        "target_depth": min(target_depth, capacity),
        "encoding": encoding,
        "fade_frames": fade_frames,
    }
    c, py = compiled.JitterBuffer(**kwargs), reference.JitterBuffer(**kwargs)
    next_seq = start
    for kind, offset, ts_noise in ops:
        if kind == "pop":
            assert c.pop() == py.pop()
        else:
            seq = (next_seq + offset) & 0xFFFF
            if kind == "jump" or offset == 0:
                next_seq = (seq + 1) & 0xFFFF
            payload = data.draw(st.binary(min_size=6, max_size=6))
            timestamp = (seq * 160 + ts_noise) & 0xFFFFFFFF
            c.push(seq, timestamp, payload)
            py.push(seq, timestamp, payload)
        assert c.stats == py.stats
        assert (c.playout_seq, c.last_timestamp, c.primed) == (
            py.playout_seq,
            py.last_timestamp,
            py.primed,
        )
