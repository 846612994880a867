"""In-band DTMF tones carry exactly the Q.23 pair of each key, with the timing of SPEC §3.5."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.media import ulaw_to_pcm16
from voicecall.media.dtmf import DTMF_FREQUENCIES_HZ, PAUSE_MS, dtmf_ulaw

ALL_FREQUENCIES = sorted({f for pair in DTMF_FREQUENCIES_HZ.values() for f in pair})


def _power(samples: list[int], freq_hz: float) -> float:
    """Goertzel power of one frequency over the samples (8 kHz)."""
    coeff = 2 * math.cos(2 * math.pi * freq_hz / 8000)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def _pcm(ulaw: bytes) -> list[int]:
    raw = ulaw_to_pcm16(ulaw)
    return list(struct.unpack(f"<{len(raw) // 2}h", raw))


@pytest.mark.parametrize("digit", sorted(DTMF_FREQUENCIES_HZ))
def test_each_key_sounds_its_two_frequencies(digit: str) -> None:
    """A key's 100 ms tone carries its row and column frequency, far above every other one."""
    tone = _pcm(dtmf_ulaw(digit))[:800]
    powers = {f: _power(tone, f) for f in ALL_FREQUENCIES}
    wanted = set(DTMF_FREQUENCIES_HZ[digit])
    weakest_wanted = min(powers[f] for f in wanted)
    strongest_other = max(p for f, p in powers.items() if f not in wanted)
    assert weakest_wanted > 100 * strongest_other


def test_tone_then_silence_per_digit_and_peak_level() -> None:
    """Each digit is 100 ms of tone then 100 ms of silence, peaking near 0.7 of full scale."""
    pcm = _pcm(dtmf_ulaw("5"))
    assert len(pcm) == 1600
    assert max(abs(s) for s in pcm[800:]) == 0
    peak = max(abs(s) for s in pcm[:800])
    assert 0.6 * 32767 < peak <= 0.72 * 32767


@pytest.mark.parametrize(("char", "ms"), sorted(PAUSE_MS.items()))
def test_pauses_are_silence_of_the_right_length(char: str, ms: int) -> None:
    """w, p and "," pause 0.5 s; W and P pause 1 s; a pause is pure u-law silence."""
    audio = dtmf_ulaw(f"1{char}2")
    assert len(audio) == 1600 + 8 * ms + 1600
    assert set(audio[1600 : 1600 + 8 * ms]) == {0xFF}


def test_invalid_character_is_named() -> None:
    """An unknown character raises ValueError naming it and its position."""
    with pytest.raises(ValueError, match=r"invalid DTMF character 'x' at position 2"):
        dtmf_ulaw("12x")


@given(st.text(alphabet="0123456789*#wWpP,", max_size=12))
def test_length_is_the_sum_of_its_parts(digits: str) -> None:
    """The audio length is 200 ms per key plus each pause, at 8 samples per ms."""
    expected = sum(8 * PAUSE_MS[c] if c in PAUSE_MS else 1600 for c in digits)
    assert len(dtmf_ulaw(digits)) == expected
