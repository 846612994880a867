"""In-band DTMF: ITU-T Q.23 keypad tones as 8 kHz u-law, for sending digits on a live stream."""

from __future__ import annotations

import math
import struct
from functools import cache

from ._core import pcm16_to_ulaw

__all__ = [
    "DTMF_FREQUENCIES_HZ",
    "PAUSE_MS",
    "SILENCE_ULAW",
    "TONE_AMPLITUDE",
    "TONE_MS",
    "dtmf_ulaw",
]

#: (row, column) frequencies of each key (ITU-T Q.23).
DTMF_FREQUENCIES_HZ: dict[str, tuple[int, int]] = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip
#: Pause characters (SPEC §3.5): w, p and "," wait 0.5 s; W and P wait 1 s.
PAUSE_MS: dict[str, int] = {"w": 500, "p": 500, ",": 500, "W": 1000, "P": 1000}
TONE_MS = 100  # each digit sounds for 100 ms, then 100 ms of silence
TONE_AMPLITUDE = 0.35  # of full scale, per frequency
SILENCE_ULAW = 0xFF
_RATE_HZ = 8000


@cache
def _digit_ulaw(digit: str) -> bytes:
    low, high = DTMF_FREQUENCIES_HZ[digit]
    n = _RATE_HZ * TONE_MS // 1000
    scale = TONE_AMPLITUDE * 32767
    samples = [
        round(
            scale * math.sin(2 * math.pi * low * i / _RATE_HZ)
            + scale * math.sin(2 * math.pi * high * i / _RATE_HZ)
        )
        for i in range(n)
    ]
    return pcm16_to_ulaw(struct.pack(f"<{n}h", *samples)) + bytes([SILENCE_ULAW]) * n


def dtmf_ulaw(digits: str) -> bytes:
    """The u-law 8 kHz audio that dials ``digits`` (0-9 * # A-D, with w/W/p/P/, pauses)."""
    out = bytearray()
    for position, char in enumerate(digits):
        if char in PAUSE_MS:
            out += bytes([SILENCE_ULAW]) * (_RATE_HZ * PAUSE_MS[char] // 1000)
        elif char in DTMF_FREQUENCIES_HZ:
            out += _digit_ulaw(char)
        else:
            raise ValueError(
                f"invalid DTMF character {char!r} at position {position} of {digits!r}"
            )
    return bytes(out)
