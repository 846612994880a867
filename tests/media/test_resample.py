"""Streaming resampler: chunking invariance, bit-exactness with the reference, quality, latency."""

from __future__ import annotations

import itertools
import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.media import SUPPORTED_RATES_HZ, Resampler
from voicecall.media.ref import resample as ref_resample

RATES = (8000, 16000, 24000, 48000)
ALL_PAIRS = list(itertools.product(RATES, RATES))
PAIRS = [(s, d) for s, d in ALL_PAIRS if s != d]  # the 12 real conversions
AMP = 0.5 * 32767  # -6 dBFS test tones
TONE_S = 0.3  # tone length; measurements use the steady 200 ms in the middle
WINDOW = (0.05, 0.25)


def _pair_id(pair: tuple[int, int]) -> str:
    return f"{pair[0] // 1000}k-{pair[1] // 1000}k"


def _pcm(samples: Any) -> bytes:
    return np.asarray(samples, dtype="<i2").tobytes()


def _samples(pcm16: bytes) -> np.ndarray:
    return np.frombuffer(pcm16, dtype="<i2").astype(np.float64)


def _tone(rate_hz: int, freq_hz: float, seconds: float = TONE_S, amp: float = AMP) -> bytes:
    t = np.arange(round(rate_hz * seconds)) / rate_hz
    return _pcm(np.round(amp * np.sin(2 * np.pi * freq_hz * t)))


def _one_shot(cls: Any, src: int, dst: int, pcm16: bytes) -> bytes:
    r = cls(src, dst)
    return bytes(r.process(pcm16) + r.flush())


def _chunked(
    cls: Any, src: int, dst: int, pcm16: bytes, cuts: list[int]
) -> tuple[list[bytes], bytes]:
    """Feed ``pcm16`` cut at the given sample offsets; return each process() result, flush()."""
    r = cls(src, dst)
    bounds = [0, *sorted(2 * c for c in cuts if 0 < 2 * c < len(pcm16)), len(pcm16)]
    outs = [bytes(r.process(pcm16[a:b])) for a, b in itertools.pairwise(bounds)]
    return outs, bytes(r.flush())


def _steady(dst: int, pcm16: bytes) -> np.ndarray:
    """The middle of a one-shot output: whole 10 Hz periods, away from the start/end transients."""
    x = _samples(pcm16)
    return x[round(WINDOW[0] * dst) : round(WINDOW[1] * dst)]


def _fit(x: np.ndarray, rate_hz: int, freq_hz: float) -> tuple[float, float]:
    """Least-squares sinusoid at ``freq_hz``: (its amplitude, SNR of x against it in dB)."""
    t = np.arange(len(x)) / rate_hz
    basis = np.stack([np.sin(2 * np.pi * freq_hz * t), np.cos(2 * np.pi * freq_hz * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    fitted = basis @ coef
    noise = float(np.sum((x - fitted) ** 2))
    snr_db = math.inf if noise == 0 else 10 * math.log10(float(np.sum(fitted**2)) / noise)
    return float(math.hypot(*coef)), snr_db


def _grid(lo_hz: float, hi_hz: float, count: int) -> list[int]:
    """About ``count`` frequencies on the 10 Hz grid (whole periods per window) in [lo, hi]."""
    return sorted({int(10 * math.ceil(f / 10)) for f in np.linspace(lo_hz, hi_hz - 10, count)})


# --- exactness -------------------------------------------------------------------------------

signals = st.lists(
    st.one_of(st.integers(-32768, 32767), st.sampled_from([-32768, 32767, 0])), max_size=150
)
cut_lists = st.lists(st.integers(0, 150), max_size=8)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
@settings(max_examples=12, deadline=None)
@given(samples=signals, cuts=cut_lists)
def test_any_chunking_gives_the_one_shot_output(
    resampler_cls: Any, pair: tuple[int, int], samples: list[int], cuts: list[int]
) -> None:
    """Splitting the input into arbitrary chunks changes nothing: same bytes, same total."""
    src, dst = pair
    pcm = _pcm(samples)
    outs, tail = _chunked(resampler_cls, src, dst, pcm, cuts)
    assert b"".join(outs) + tail == _one_shot(resampler_cls, src, dst, pcm)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
@settings(max_examples=20, deadline=None)
@given(samples=signals, cuts=cut_lists)
def test_compiled_is_bit_identical_to_the_reference(
    pair: tuple[int, int], samples: list[int], cuts: list[int]
) -> None:
    """The compiled resampler returns the reference's exact bytes, call by call (clipping too)."""
    src, dst = pair
    pcm = _pcm(samples)
    assert _chunked(Resampler, src, dst, pcm, cuts) == _chunked(
        ref_resample.Resampler, src, dst, pcm, cuts
    )


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_compiled_matches_the_reference_on_loud_noise(pair: tuple[int, int]) -> None:
    """On full-scale noise (where outputs clip) the compiled output equals the reference's."""
    src, dst = pair
    rng = np.random.default_rng(src + dst)
    pcm = _pcm(rng.integers(-32768, 32768, size=src // 100))  # 10 ms
    assert _one_shot(Resampler, src, dst, pcm) == _one_shot(ref_resample.Resampler, src, dst, pcm)


@pytest.mark.parametrize("rate", RATES)
def test_same_rate_is_a_passthrough(resampler_cls: Any, rate: int) -> None:
    """Converting a rate to itself returns the input samples unchanged, with no delay."""
    pcm = _pcm(np.random.default_rng(rate).integers(-32768, 32768, size=101))
    r = resampler_cls(rate, rate)
    assert r.process(pcm[:50]) == pcm[:50]
    assert r.process(pcm[50:]) == pcm[50:]
    assert r.flush() == b""


# --- length, flush, alignment ----------------------------------------------------------------


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
@pytest.mark.parametrize("n_in", [0, 1, 2, 3, 7, 160, 161])
def test_flush_emits_the_tail_and_the_total_is_ceil_n_times_ratio(
    resampler_cls: Any, pair: tuple[int, int], n_in: int
) -> None:
    """process() + flush() yield ceil(n_in * dst / src) samples; flush() gives the held tail."""
    src, dst = pair
    pcm = _pcm(np.arange(n_in) * 97 % 20000 - 10000)
    r = resampler_cls(src, dst)
    head = r.process(pcm)
    tail = r.flush()
    assert (len(head) + len(tail)) // 2 == math.ceil(n_in * dst / src)
    if src != dst and n_in >= 160:
        assert len(tail) > 0
    assert r.process(pcm) + r.flush() == head + tail  # flush() starts a new, identical stream


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_output_is_time_aligned_with_the_input(pair: tuple[int, int]) -> None:
    """A click at input time t peaks at output time t: the filter delay is compensated."""
    src, dst = pair
    x = np.zeros(src // 20, dtype=np.int64)  # 50 ms
    click_at = src // 100  # 10 ms in
    x[click_at] = 30000
    y = _samples(_one_shot(Resampler, src, dst, _pcm(x)))
    assert len(y) == math.ceil(len(x) * dst / src)
    assert int(np.argmax(np.abs(y))) == click_at * dst // src


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_counters_and_reset(pair: tuple[int, int]) -> None:
    """samples_in/samples_out count the stream; reset() makes it behave like a new resampler."""
    src, dst = pair
    pcm = _tone(src, 440, 0.02)
    r = Resampler(src, dst)
    first = r.process(pcm)
    assert r.samples_in == len(pcm) // 2
    assert r.samples_out == len(first) // 2
    r.process(_tone(src, 1000, 0.01))
    r.reset()
    assert (r.samples_in, r.samples_out) == (0, 0)
    assert r.process(pcm) == first


# --- quality (compiled; the reference is bit-identical) --------------------------------------


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_1khz_tone_snr_is_at_least_60_db(pair: tuple[int, int]) -> None:
    """A 1 kHz tone comes out with noise and distortion at least 60 dB below it."""
    src, dst = pair
    out = _steady(dst, _one_shot(Resampler, src, dst, _tone(src, 1000)))
    _, snr_db = _fit(out, dst, 1000)
    assert snr_db >= 60, f"{_pair_id(pair)}: SNR {snr_db:.1f} dB"


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_passband_is_flat_within_half_a_db(pair: tuple[int, int]) -> None:
    """Tones up to 0.425 x the lower rate keep their level within +/-0.5 dB."""
    src, dst = pair
    lower = min(src, dst)
    for freq in _grid(50, 0.425 * lower + 10, 12):
        out = _steady(dst, _one_shot(Resampler, src, dst, _tone(src, freq)))
        amp, _ = _fit(out, dst, freq)
        gain_db = 20 * math.log10(amp / AMP)
        assert abs(gain_db) <= 0.5, f"{_pair_id(pair)} at {freq} Hz: {gain_db:+.2f} dB"


@pytest.mark.parametrize("pair", [p for p in PAIRS if p[0] > p[1]], ids=_pair_id)
def test_downsampling_rejects_aliases_by_60_db(pair: tuple[int, int]) -> None:
    """Input tones between 0.575 x the output rate and the input Nyquist leave < -60 dB of alias."""
    src, dst = pair
    for freq in _grid(0.575 * dst, src / 2, 24):
        out = _steady(dst, _one_shot(Resampler, src, dst, _tone(src, freq)))
        rms = float(np.sqrt(np.mean(out**2)))
        level_db = 20 * math.log10(max(rms, 1e-9) / (AMP / math.sqrt(2)))
        assert level_db <= -60, f"{_pair_id(pair)}: {freq} Hz leaves {level_db:.1f} dB"


@pytest.mark.parametrize("pair", [p for p in PAIRS if p[0] < p[1]], ids=_pair_id)
def test_upsampling_rejects_images_by_60_db(pair: tuple[int, int]) -> None:
    """Beside a passband tone, all output above 0.575 x the input rate is >= 60 dB down."""
    src, dst = pair
    for freq in _grid(50, 0.425 * src + 10, 12):
        out = _steady(dst, _one_shot(Resampler, src, dst, _tone(src, freq)))
        power = np.abs(np.fft.rfft(out)) ** 2  # the window holds whole periods: no leakage
        bin_hz = dst / len(out)
        wanted = power[round(freq / bin_hz)]
        images = float(np.sum(power[math.ceil(0.575 * src / bin_hz) :]))
        level_db = 10 * math.log10(max(images, 1e-9) / wanted)
        assert level_db <= -60, f"{_pair_id(pair)}: {freq} Hz images at {level_db:.1f} dB"


# --- streaming behaviour ---------------------------------------------------------------------


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_pair_id)
def test_click_comes_out_of_process_within_5_ms(pair: tuple[int, int]) -> None:
    """Fed in 1 ms chunks, a click's peak is returned by process() at most 5 ms of input later."""
    src, dst = pair
    chunk = src // 1000
    x = np.zeros(chunk * 60, dtype=np.int64)
    click_at = chunk * 30  # the first sample of a chunk: the worst case
    x[click_at] = 30000
    pcm = _pcm(x)
    r = Resampler(src, dst)
    assert r.delay_ms <= 5
    produced: list[float] = []
    fed_when_peak_out = None
    peak_index = click_at * dst // src
    for start in range(0, len(x), chunk):
        produced.extend(_samples(r.process(pcm[2 * start : 2 * (start + chunk)])))
        if fed_when_peak_out is None and len(produced) > peak_index:
            fed_when_peak_out = start + chunk
    assert fed_when_peak_out is not None
    assert int(np.argmax(np.abs(produced))) == peak_index
    latency_ms = 1000 * (fed_when_peak_out - click_at) / src
    assert latency_ms <= 5, f"{_pair_id(pair)}: {latency_ms} ms"


@pytest.mark.parametrize("pair", PAIRS, ids=_pair_id)
def test_never_resets_on_its_own_across_a_second_of_silence(pair: tuple[int, int]) -> None:
    """After 1 s of digital silence mid-stream, streamed 20 ms frames equal the one-shot output."""
    src, dst = pair
    pcm = _tone(src, 700, 0.3) + bytes(2 * src) + _tone(src, 1300, 0.3)
    frame = 2 * src // 50
    r = Resampler(src, dst)
    streamed = b"".join(r.process(pcm[i : i + frame]) for i in range(0, len(pcm), frame))
    assert r.samples_in == len(pcm) // 2
    assert streamed + r.flush() == _one_shot(Resampler, src, dst, pcm)


# --- API details and errors ------------------------------------------------------------------


@pytest.mark.parametrize("pair", [(8000, 16000), (24000, 8000)], ids=_pair_id)
def test_process_into_writes_what_process_returns(pair: tuple[int, int]) -> None:
    """process_into() fills the caller's buffer with process()'s bytes and returns their count."""
    src, dst = pair
    pcm = _tone(src, 1000, 0.1)
    want = Resampler(src, dst).process(pcm)
    out = bytearray(len(want) + 8)
    r = Resampler(src, dst)
    written = r.process_into(memoryview(pcm), out)
    assert written == len(want)
    assert bytes(out[:written]) == want
    assert out[written:] == bytes(8)


def test_process_into_too_small_buffer_raises_naming_sizes() -> None:
    """process_into() into a buffer smaller than the ready output raises ValueError with sizes."""
    r = Resampler(8000, 16000)
    ready = len(Resampler(8000, 16000).process(bytes(320)))
    with pytest.raises(ValueError, match=rf"\b{ready - 2}\b.*\b{ready}\b"):
        r.process_into(bytes(320), bytearray(ready - 2))


def test_process_accepts_any_contiguous_buffer() -> None:
    """bytearray, memoryview and numpy int16 input give the same output as bytes."""
    pcm = _tone(16000, 1000, 0.02)
    want = Resampler(16000, 8000).process(pcm)
    for buf in (bytearray(pcm), memoryview(pcm), np.frombuffer(pcm, dtype="<i2").copy()):
        assert Resampler(16000, 8000).process(buf) == want, type(buf)


@pytest.mark.parametrize(("src", "dst"), [(4000, 8000), (8000, 96000), (0, 8000), (16000, -1)])
def test_unsupported_rates_raise_value_error(resampler_cls: Any, src: int, dst: int) -> None:
    """Asking for a rate outside 8-48 kHz raises ValueError naming the rates."""
    with pytest.raises(ValueError, match=rf"{src}.*{dst}"):
        resampler_cls(src, dst)


def test_supported_rates_are_exported() -> None:
    """voicecall.media.SUPPORTED_RATES_HZ lists the four rates the resampler converts between."""
    assert tuple(SUPPORTED_RATES_HZ) == RATES


def test_odd_length_input_raises_and_leaves_the_stream_intact(resampler_cls: Any) -> None:
    """An odd PCM16 byte count raises ValueError naming it; the stream goes on unharmed."""
    pcm = _tone(8000, 440, 0.02)
    r = resampler_cls(8000, 24000)
    first = r.process(pcm)
    with pytest.raises(ValueError, match=r"\b321\b"):
        r.process(bytes(321))
    rest = r.process(pcm) + r.flush()
    assert first + rest == _one_shot(resampler_cls, 8000, 24000, pcm + pcm)


def test_reference_packs_little_endian() -> None:
    """The reference's output is signed 16-bit little-endian, like the compiled one."""
    out = _one_shot(ref_resample.Resampler, 8000, 8000, struct.pack("<2h", -2, 300))
    assert struct.unpack("<2h", out) == (-2, 300)
