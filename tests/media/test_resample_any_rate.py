"""Rates between the standard ones (22.05 and 44.1 kHz TTS output, 11.025, 12, 32 kHz) resample
with the same guarantees: identical to the reference over any chunking, and the quality bounds."""

from __future__ import annotations

import math
import random
import struct

import numpy as np
import pytest

from voicecall.media import MAX_RATE_HZ, MIN_RATE_HZ, Resampler
from voicecall.media.ref.resample import Resampler as RefResampler

PAIRS = [(22050, 8000), (44100, 8000), (11025, 8000), (8000, 12000), (44100, 16000), (32000, 8000)]


def _tone(rate_hz: int, freq_hz: float, seconds: float = 1.0) -> bytes:
    n = int(rate_hz * seconds)
    step = 2 * math.pi * freq_hz / rate_hz
    return struct.pack(f"<{n}h", *(round(0.5 * 32767 * math.sin(step * i)) for i in range(n)))


def _run(src: int, dst: int, pcm: bytes) -> np.ndarray:
    r = Resampler(src, dst)
    return np.frombuffer(r.process(pcm) + r.flush(), dtype="<i2").astype(np.float64)


def test_rate_range_is_exported() -> None:
    """The resampler takes any integer rate from 8 kHz to 48 kHz."""
    assert (MIN_RATE_HZ, MAX_RATE_HZ) == (8000, 48000)


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_matches_the_reference_over_random_chunks(src: int, dst: int) -> None:
    """Output over random chunking is bit-identical to the reference's one-shot output."""
    rng = random.Random(src * 7 + dst)
    pcm = struct.pack("<1200h", *(rng.randint(-20000, 20000) for _ in range(1200)))
    ours = Resampler(src, dst)
    out, i = b"", 0
    while i < len(pcm):
        step = 2 * rng.randint(0, 200)
        out += ours.process(pcm[i : i + step])
        i += step
    out += ours.flush()
    ref = RefResampler(src, dst)
    assert out == ref.process(pcm) + ref.flush()
    assert len(out) // 2 == -(-1200 * dst // src)


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_tone_snr_and_alias_rejection(src: int, dst: int) -> None:
    """A 1 kHz tone keeps >= 60 dB SNR; tones above 0.575 x the lower rate leak <= -60 dB."""
    y = _run(src, dst, _tone(src, 1000))
    t = np.arange(len(y)) / dst
    ref = 0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)
    window = slice(dst // 10, -dst // 10)
    error = y[window] - ref[window]
    assert 10 * math.log10(np.sum(ref[window] ** 2) / np.sum(error**2)) >= 60
    lower = min(src, dst)
    if src > dst:
        for freq in np.linspace(0.575 * lower, 0.49 * src, 6):
            leak = _run(src, dst, _tone(src, float(freq)))[window]
            rms = math.sqrt(float(np.mean(leak**2))) + 1e-9
            assert 20 * math.log10(rms * math.sqrt(2) / (0.5 * 32767)) <= -60, freq
