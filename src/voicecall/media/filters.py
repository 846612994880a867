"""Designs the resampler's polyphase FIR filters (Kaiser-windowed sinc), cached per rate pair."""

from __future__ import annotations

import math
from array import array
from functools import cache
from typing import NamedTuple

__all__ = ["STOPBAND_DB", "TRANSITION_FRACTION", "PolyphaseFilter", "design_resampler_filter"]

# Passband edge 0.425 x the lower rate, stopband edge 0.575 x: a transition of 0.15 x the lower
# rate centred on its Nyquist frequency. 70 dB leaves margin over the 60 dB requirement for the
# int16 rounding of the output.
STOPBAND_DB = 70.0
TRANSITION_FRACTION = 0.15
LANES = 8  # must match VC_LANES in src/_media/resample.h


class PolyphaseFilter(NamedTuple):
    """A prototype filter split into ``up`` phases of ``taps`` reversed coefficients each."""

    up: int
    down: int
    taps: int
    delay: int  # linear-phase delay of the prototype, in upsampled samples
    # float32, phase-major, reversed, zero-padded at the old end to a multiple of LANES
    coefs: array[float]


def _bessel_i0(x: float) -> float:
    term = total = 1.0
    half = x / 2.0
    k = 1
    while term > 1e-17 * total:
        term *= (half / k) ** 2
        total += term
        k += 1
    return total


@cache
def design_resampler_filter(src_rate_hz: int, dst_rate_hz: int) -> PolyphaseFilter:
    """Design the filter converting ``src_rate_hz`` to ``dst_rate_hz`` (any positive rates)."""
    if src_rate_hz <= 0 or dst_rate_hz <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate_hz} and {dst_rate_hz}")
    g = math.gcd(src_rate_hz, dst_rate_hz)
    up, down = dst_rate_hz // g, src_rate_hz // g
    if up == down:
        return PolyphaseFilter(1, 1, LANES, 0, array("f", [0.0] * (LANES - 1) + [1.0]))
    fs_up = src_rate_hz * up
    f_low = min(src_rate_hz, dst_rate_hz)
    cutoff = 0.5 * f_low / fs_up  # cycles per upsampled sample
    width = TRANSITION_FRACTION * f_low / fs_up
    n = math.ceil((STOPBAND_DB - 7.95) / (14.36 * width)) + 1
    n += 1 - n % 2  # odd length: integer delay
    beta = 0.1102 * (STOPBAND_DB - 8.7)
    delay = (n - 1) // 2
    i0_beta = _bessel_i0(beta)
    proto = []
    for i in range(n):
        m = i - delay
        sinc = 2.0 * cutoff if m == 0 else math.sin(2.0 * math.pi * cutoff * m) / (math.pi * m)
        r = m / delay
        window = _bessel_i0(beta * math.sqrt(max(0.0, 1.0 - r * r))) / i0_beta
        proto.append(sinc * window)
    gain = up / math.fsum(proto)  # unity DC gain through every phase on average
    proto = [c * gain for c in proto]
    per_phase = -(-n // up)
    taps = -(-per_phase // LANES) * LANES
    coefs = array("f", [0.0] * (up * taps))
    for p in range(up):
        for i in range(taps):
            idx = p + i * up
            if idx < n:
                coefs[p * taps + taps - 1 - i] = proto[idx]
    return PolyphaseFilter(up, down, taps, delay, coefs)
