"""VAD framer: compiled and pure-Python reference run the same behaviour tests and agree exactly."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.media import vad as compiled
from voicecall.media.ref import g711 as ref_g711
from voicecall.media.ref import vad as reference

DATA = Path(__file__).resolve().parent.parent / "data"
STARTED, STOPPED = "speech-started", "speech-stopped"


@pytest.fixture(params=[compiled, reference], ids=["c", "py"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The VAD implementation under test."""
    module: ModuleType = request.param
    return module


def pcm16(samples: np.ndarray) -> bytes:
    """Little-endian PCM16 bytes of float samples in [-1, 1]."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def tone(seconds: float, rate_hz: int, dbfs: float, freq_hz: float = 440.0) -> np.ndarray:
    """A sine whose RMS is `dbfs` relative to a full-scale square wave."""
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    return math.sqrt(2) * 10 ** (dbfs / 20) * np.sin(2 * math.pi * freq_hz * t)


def noise(seconds: float, rate_hz: int, dbfs: float, seed: int = 1) -> np.ndarray:
    """White Gaussian noise with RMS `dbfs`."""
    rng = np.random.default_rng(seed)
    return 10 ** (dbfs / 20) * rng.standard_normal(round(seconds * rate_hz))


def silence(seconds: float, rate_hz: int) -> np.ndarray:
    """Digital silence."""
    return np.zeros(round(seconds * rate_hz))


def kinds(events: tuple[Any, ...]) -> list[str]:
    """The kinds of a sequence of events, in order."""
    return [e.kind for e in events]


def test_silence_is_not_speech(impl: ModuleType) -> None:
    """Three seconds of u-law silence produce no events and 150 frames at -100 dBFS."""
    vad = impl.VadFramer()
    assert vad.process(b"\xff" * 24000) == ()
    assert not vad.in_speech
    assert vad.frames == 150
    assert vad.energy_dbfs == -100.0


def test_steady_noise_is_not_speech(impl: ModuleType) -> None:
    """Steady white noise from the first frame never reads as speech."""
    vad = impl.VadFramer(encoding="pcm16")
    assert vad.process(pcm16(noise(5.0, 8000, -30.0))) == ()
    assert vad.noise_floor_db == pytest.approx(-30.0, abs=2.0)


def test_noise_onset_is_released_as_the_floor_adapts(impl: ModuleType) -> None:
    """Noise switching on after silence may start speech, but the floor catches up and stops it."""
    vad = impl.VadFramer(encoding="pcm16")
    events = vad.process(pcm16(np.concatenate([silence(0.5, 8000), noise(10.0, 8000, -35.0)])))
    assert kinds(events) == [STARTED, STOPPED]
    assert events[0].timestamp_ms == 500
    assert not vad.in_speech
    assert vad.noise_floor_db == pytest.approx(-35.0, abs=2.0)


@pytest.mark.parametrize("rate_hz", [8000, 16000])
@pytest.mark.parametrize("frame_ms", [10, 20, 30])
@pytest.mark.parametrize("encoding", ["ulaw", "pcm16"])
def test_tone_burst_timestamps(
    impl: ModuleType, rate_hz: int, frame_ms: int, encoding: str
) -> None:
    """A 1.2 s tone between silences starts and stops speech at the tone's exact frame edges."""
    audio = pcm16(
        np.concatenate([silence(0.6, rate_hz), tone(1.2, rate_hz, -20.0), silence(1.2, rate_hz)])
    )
    if encoding == "ulaw":
        audio = ref_g711.pcm16_to_ulaw(audio)
    vad = impl.VadFramer(sample_rate_hz=rate_hz, frame_ms=frame_ms, encoding=encoding)
    events = vad.process(audio)
    assert [(e.kind, e.timestamp_ms) for e in events] == [(STARTED, 600), (STOPPED, 1800)]
    assert [e.frame_index for e in events] == [600 // frame_ms, 1800 // frame_ms]
    assert vad.frames == 3000 // frame_ms
    assert vad.last_speech_frame == 1800 // frame_ms - 1  # the tone's last frame


def test_last_speech_frame_tracks_the_end_of_speech_before_the_hangover(
    impl: ModuleType,
) -> None:
    """Mid-hangover (speech not yet stopped) the last voiced frame already marks the end."""
    vad = impl.VadFramer(encoding="pcm16")
    assert vad.last_speech_frame == -1
    vad.process(pcm16(np.concatenate([silence(0.4, 8000), tone(0.6, 8000, -20.0)])))
    assert vad.in_speech and vad.last_speech_frame == vad.frames - 1 == 49
    vad.process(pcm16(silence(0.1, 8000)))  # 5 quiet frames: still within the 15-frame hangover
    assert vad.in_speech
    assert vad.last_speech_frame == 49 and vad.frames == 55


def test_quiet_tone_below_min_speech_level_is_ignored(impl: ModuleType) -> None:
    """A tone under min_speech_dbfs after digital silence is not speech."""
    vad = impl.VadFramer(encoding="pcm16", min_speech_dbfs=-50.0)
    assert vad.process(pcm16(np.concatenate([silence(1, 8000), tone(1, 8000, -60.0)]))) == ()


def test_hysteresis_ignores_blips_and_short_gaps(impl: ModuleType) -> None:
    """A 40 ms click does not start speech, and a 200 ms pause inside speech does not stop it."""
    parts = [
        silence(1.0, 8000),
        tone(0.04, 8000, -20.0),  # 2 frames < start_frames
        silence(1.0, 8000),
        tone(0.5, 8000, -20.0),
        silence(0.2, 8000),  # 10 frames < stop_frames
        tone(0.5, 8000, -20.0),
        silence(1.0, 8000),
    ]
    vad = impl.VadFramer(encoding="pcm16", start_frames=3, stop_frames=15)
    events = vad.process(pcm16(np.concatenate(parts)))
    assert [(e.kind, e.timestamp_ms) for e in events] == [(STARTED, 2040), (STOPPED, 3240)]


@pytest.mark.parametrize(
    ("clip", "lead_ms"), [("hello", 500), ("appointment", 400), ("goodbye", 600)]
)
def test_speech_clip_is_one_utterance(impl: ModuleType, clip: str, lead_ms: int) -> None:
    """Each spoken clip is one utterance that starts near the end of its leading silence."""
    audio = (DATA / f"{clip}.ulaw").read_bytes()
    events = impl.VadFramer().process(audio)
    assert kinds(events) == [STARTED, STOPPED]
    assert lead_ms - 40 <= events[0].timestamp_ms <= lead_ms + 200
    assert events[1].timestamp_ms < len(audio) // 8 - 300  # stops inside the trailing silence


def test_two_utterances_are_separated(impl: ModuleType) -> None:
    """Two phrases with a second of silence between them are two utterances."""
    events = impl.VadFramer().process((DATA / "two_utterances.ulaw").read_bytes())
    assert kinds(events) == [STARTED, STOPPED, STARTED, STOPPED]
    assert events[2].timestamp_ms - events[1].timestamp_ms >= 800


def test_speech_over_line_noise(impl: ModuleType) -> None:
    """The two utterances are still found with steady noise at -45 dBFS under them."""
    speech = np.frombuffer(
        ref_g711.ulaw_to_pcm16((DATA / "two_utterances.ulaw").read_bytes()), "<i2"
    )
    mixed = speech / 32768 + noise(len(speech) / 8000, 8000, -45.0, seed=7)
    events = impl.VadFramer(encoding="pcm16").process(pcm16(mixed))
    assert kinds(events) == [STARTED, STOPPED, STARTED, STOPPED]


def test_any_chunking_gives_the_same_events(impl: ModuleType) -> None:
    """Feeding a clip 1, 7 or 333 bytes at a time gives the events of feeding it whole."""
    audio = (DATA / "two_utterances.ulaw").read_bytes()
    whole = impl.VadFramer().process(audio)
    for size in (1, 7, 333):
        vad = impl.VadFramer()
        events: list[Any] = []
        for i in range(0, len(audio), size):
            events.extend(vad.process(memoryview(audio)[i : i + size]))
        assert tuple(events) == whole
        assert vad.frames == len(audio) // 160


def test_no_event_returns_the_shared_empty_tuple(impl: ModuleType) -> None:
    """A frame without an event returns the empty-tuple singleton, so nothing is allocated."""
    vad, empty = impl.VadFramer(), ()
    assert vad.process(b"\xff" * 160) is empty


def test_partial_frame_waits_for_the_rest(impl: ModuleType) -> None:
    """A chunk shorter than a frame is buffered, not counted, until the frame completes."""
    vad = impl.VadFramer(encoding="pcm16", frame_ms=10)
    vad.process(bytearray(159))
    assert vad.frames == 0
    vad.process(b"\x00")
    assert vad.frames == 1


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"sample_rate_hz": 44100}, "sample_rate_hz"),
        ({"frame_ms": 25}, "frame_ms"),
        ({"encoding": "alaw"}, "encoding"),
        ({"start_frames": 0}, "start_frames"),
        ({"stop_frames": -1}, "stop_frames"),
        ({"threshold_db": float("nan")}, "threshold_db"),
        ({"min_speech_dbfs": 3.0}, "min_speech_dbfs"),
        ({"noise_rise_ms": 0}, "noise_rise_ms"),
        ({"noise_fall_ms": -5.0}, "noise_fall_ms"),
    ],
)
def test_bad_arguments_name_the_value(impl: ModuleType, kwargs: dict[str, Any], name: str) -> None:
    """Each invalid argument raises ValueError naming the argument and its value."""
    with pytest.raises(ValueError, match=name) as info:
        impl.VadFramer(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)


segment = st.tuples(
    st.sampled_from(["silence", "tone", "noise"]),
    st.floats(0.0, 0.8),
    st.floats(-70.0, -3.0),
)


@settings(max_examples=60, deadline=None)
@given(
    segments=st.lists(segment, min_size=1, max_size=8),
    rate_hz=st.sampled_from([8000, 16000]),
    frame_ms=st.sampled_from([10, 20, 30]),
    encoding=st.sampled_from(["ulaw", "pcm16"]),
    start_frames=st.integers(1, 6),
    stop_frames=st.integers(1, 20),
    threshold_db=st.floats(1.0, 20.0),
    cuts=st.lists(st.integers(0, 40000), max_size=12),
    seed=st.integers(0, 2**16),
)
def test_compiled_matches_reference(
    segments: list[tuple[str, float, float]],
    rate_hz: int,
    frame_ms: int,
    encoding: str,
    start_frames: int,
    stop_frames: int,
    threshold_db: float,
    cuts: list[int],
    seed: int,
) -> None:
    """On random audio cut at random points, both give the same events, floor and counters."""
    makers = {
        "silence": lambda s, _: silence(s, rate_hz),
        "tone": lambda s, db: tone(s, rate_hz, db, 300.0 + seed % 1000),
        "noise": lambda s, db: noise(s, rate_hz, db, seed),
    }
    audio = pcm16(np.concatenate([makers[kind](s, db) for kind, s, db in segments]))
    if encoding == "ulaw":
        audio = ref_g711.pcm16_to_ulaw(audio)
    kwargs = {
        "sample_rate_hz": rate_hz,
        "frame_ms": frame_ms,
        "encoding": encoding,
        "start_frames": start_frames,
        "stop_frames": stop_frames,
        "threshold_db": threshold_db,
    }
    c, py = compiled.VadFramer(**kwargs), reference.VadFramer(**kwargs)
    bounds = [0, *sorted(min(x, len(audio)) for x in cuts), len(audio)]
    for lo, hi in itertools.pairwise(bounds):
        assert c.process(audio[lo:hi]) == py.process(audio[lo:hi])
        assert (c.frames, c.in_speech, c.last_speech_frame, c.noise_floor_db, c.energy_dbfs) == (
            py.frames,
            py.in_speech,
            py.last_speech_frame,
            py.noise_floor_db,
            py.energy_dbfs,
        )
