"""The local barge-in gate (SPEC §1.6 ``realtime.bargeIn``, §7.5): inbound µ-law RMS per 20 ms
chunk, 2 loud chunks in a row start the caller's speech, 12 quiet ones stop it."""

from __future__ import annotations

import itertools
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.media import pcm16_to_ulaw, ulaw_to_pcm16
from voicecall.realtime.gate import (
    CHUNK_BYTES,
    GATE_STARTED,
    GATE_STOPPED,
    RMS_THRESHOLD,
    START_CHUNKS,
    STOP_CHUNKS,
    BargeInGate,
)


def _tone(rms: float, frames: int = 1, hz: float = 440.0) -> bytes:
    """µ-law of a sine whose RMS (normalised to full scale) is about ``rms``."""
    amplitude = rms * math.sqrt(2) * 32768
    n = frames * CHUNK_BYTES
    samples = (round(amplitude * math.sin(2 * math.pi * hz * i / 8000)) for i in range(n))
    pcm = struct.pack(f"<{n}h", *samples)
    return pcm16_to_ulaw(pcm)


def oracle_rms(chunk: bytes) -> float:
    """RMS of a µ-law chunk normalised to [-1, 1], by numpy."""
    samples = np.frombuffer(ulaw_to_pcm16(chunk), dtype=np.int16).astype(np.float64) / 32768.0
    return float(np.sqrt(np.mean(samples * samples)))


LOUD = _tone(0.1)
QUIET = b"\xff" * CHUNK_BYTES
NEAR = _tone(0.03)  # quiet, but not silence


def test_defaults_are_the_spec_values() -> None:
    gate = BargeInGate()
    assert (gate.rms_threshold, gate.start_chunks, gate.stop_chunks) == (0.035, 2, 12)
    assert (RMS_THRESHOLD, START_CHUNKS, STOP_CHUNKS) == (0.035, 2, 12)


def test_a_tone_above_the_threshold_starts_after_exactly_two_chunks() -> None:
    gate = BargeInGate()
    assert oracle_rms(LOUD) > 0.035
    assert gate.process(LOUD) == ()
    assert not gate.speaking
    assert gate.process(LOUD) == (GATE_STARTED,)
    assert gate.speaking
    assert gate.process(LOUD) == ()  # reported once


def test_silence_stops_after_exactly_twelve_chunks() -> None:
    gate = BargeInGate()
    gate.process(LOUD + LOUD)
    results = [gate.process(QUIET) for _ in range(STOP_CHUNKS)]
    assert results == [()] * (STOP_CHUNKS - 1) + [(GATE_STOPPED,)]
    assert not gate.speaking
    assert [gate.process(QUIET) for _ in range(20)] == [()] * 20


def test_one_loud_chunk_is_not_speech_and_a_loud_chunk_restarts_the_quiet_count() -> None:
    gate = BargeInGate()
    assert [gate.process(c) for c in (LOUD, QUIET, LOUD, QUIET)] == [()] * 4
    gate.process(LOUD + LOUD)
    for _ in range(STOP_CHUNKS - 1):
        assert gate.process(QUIET) == ()
    assert gate.process(LOUD) == ()  # the caller went on: the quiet run starts again
    assert [gate.process(QUIET) for _ in range(STOP_CHUNKS)][-1] == (GATE_STOPPED,)


def test_chunks_just_below_the_threshold_never_start_and_just_above_do() -> None:
    below, above = NEAR, _tone(0.04)
    assert oracle_rms(below) < RMS_THRESHOLD < oracle_rms(above)
    gate = BargeInGate()
    assert [gate.process(below) for _ in range(50)] == [()] * 50
    assert gate.process(above) + gate.process(above) == (GATE_STARTED,)


def test_the_three_config_values_are_honoured() -> None:
    gate = BargeInGate(rms_threshold=0.2, start_chunks=3, stop_chunks=2)
    assert [gate.process(LOUD) for _ in range(5)] == [()] * 5  # RMS 0.1 is quiet now
    strong = _tone(0.3)
    assert [gate.process(strong) for _ in range(3)] == [(), (), (GATE_STARTED,)]
    assert [gate.process(QUIET) for _ in range(2)] == [(), (GATE_STOPPED,)]


@pytest.mark.parametrize(
    ("threshold", "start", "stop"),
    [(0, 2, 12), (-0.1, 2, 12), (1.5, 2, 12), (math.nan, 2, 12), (0.035, 0, 12), (0.035, 2, 0)],
)
def test_bad_config_values_are_refused(threshold: float, start: int, stop: int) -> None:
    with pytest.raises(ValueError):
        BargeInGate(threshold, start, stop)


def test_odd_chunk_sizes_are_reframed_into_20ms_chunks() -> None:
    """Audio split anywhere is measured in the same 160-byte chunks as frame-aligned audio."""
    gate = BargeInGate()
    audio = LOUD * 2 + QUIET * 12
    transitions: list[str] = []
    at = 0
    # A chunk may finish several 20 ms chunks, or none (then its bytes wait for the next one).
    for size in [7, 100, 153, 1, 400, 333, 1000, 500, 300, 9999]:
        transitions += gate.process(audio[at : at + size])
        at += size
    assert transitions == [GATE_STARTED, GATE_STOPPED]
    assert gate.chunks == len(audio) // CHUNK_BYTES


def test_one_long_chunk_can_start_and_stop() -> None:
    gate = BargeInGate()
    assert gate.process(LOUD * 2 + QUIET * 12) == (GATE_STARTED, GATE_STOPPED)
    assert gate.process(bytearray(LOUD[:80])) == ()  # a half chunk is not measured yet
    assert gate.chunks == 14
    assert gate.process(memoryview(LOUD[80:])) == () and gate.chunks == 15


def test_disabled_gate_ignores_audio_and_restarts_quiet() -> None:
    """While the greeting plays the bridge disables the gate: nothing is reported, and when
    enabled again it starts from quiet (no stale loud count, no stale speech)."""
    gate = BargeInGate()
    gate.process(LOUD)
    gate.enabled = False
    assert gate.process(LOUD * 5) == () and not gate.speaking
    gate.enabled = True
    assert gate.process(LOUD) == ()
    assert gate.process(LOUD) == (GATE_STARTED,)
    gate.enabled = False
    assert not gate.speaking  # reset without a "stopped"
    assert BargeInGate(enabled=False).process(LOUD * 3) == ()


def test_rms_of_digital_silence_is_zero() -> None:
    gate = BargeInGate()
    assert gate.last_rms == 0.0
    gate.process(QUIET)
    assert gate.last_rms == 0.0 == oracle_rms(QUIET)


@settings(max_examples=200, deadline=None)
@given(frame=st.binary(min_size=CHUNK_BYTES, max_size=CHUNK_BYTES))
def test_rms_matches_a_numpy_oracle(frame: bytes) -> None:
    gate = BargeInGate()
    gate.process(frame)
    assert gate.last_rms == pytest.approx(oracle_rms(frame), rel=1e-12, abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["loud", "quiet", "near"]), max_size=60),
    cuts=st.lists(st.integers(min_value=0, max_value=60 * CHUNK_BYTES), max_size=15),
)
def test_transitions_match_an_oracle_state_machine_over_any_chunking(
    kinds: list[str], cuts: list[int]
) -> None:
    """The gate over arbitrarily chunked audio reports what a plain per-chunk state machine on
    the numpy RMS reports."""
    library = {"loud": LOUD, "quiet": QUIET, "near": NEAR}
    audio = b"".join(library[k] for k in kinds)
    expected: list[str] = []
    speaking, run = False, 0
    for kind in kinds:
        loud = oracle_rms(library[kind]) >= RMS_THRESHOLD
        run = 0 if loud == speaking else run + 1
        if not speaking and run >= START_CHUNKS:
            speaking, run = True, 0
            expected.append(GATE_STARTED)
        elif speaking and run >= STOP_CHUNKS:
            speaking, run = False, 0
            expected.append(GATE_STOPPED)
    gate = BargeInGate()
    bounds = sorted({0, len(audio), *(c for c in cuts if c <= len(audio))})
    got: list[str] = []
    for a, b in itertools.pairwise(bounds):
        got += gate.process(audio[a:b])
    assert got == expected
