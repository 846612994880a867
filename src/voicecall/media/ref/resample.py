"""Pure-Python streaming resampler: the compiled one's float32 arithmetic, in the same order."""

from __future__ import annotations

import math
import struct

from typing_extensions import Buffer

from ..filters import LANES, design_resampler_filter

__all__ = ["Resampler"]

SUPPORTED_RATES_HZ = (8000, 16000, 24000, 48000)
MIN_RATE_HZ, MAX_RATE_HZ = 8000, 48000


_F32 = struct.Struct("<f")


def _f32(v: float) -> float:
    """Round a double to the nearest float32 (exact emulation of one float32 + or x)."""
    return float(_F32.unpack(_F32.pack(v))[0])


def _round16(f: float) -> int:
    v = _f32(f + 0.5)
    if v >= 32767.0:
        return 32767
    if v <= -32768.0:
        return -32768
    return math.floor(v)


class Resampler:
    """Reference of ``voicecall.media.Resampler`` (slow; for tests)."""

    def __init__(self, src_rate_hz: int, dst_rate_hz: int) -> None:
        if not (
            MIN_RATE_HZ <= src_rate_hz <= MAX_RATE_HZ and MIN_RATE_HZ <= dst_rate_hz <= MAX_RATE_HZ
        ):
            raise ValueError(
                f"unsupported resampling {src_rate_hz} Hz -> {dst_rate_hz} Hz "
                f"(rates must be {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz)"
            )
        self.src_rate_hz = src_rate_hz
        self.dst_rate_hz = dst_rate_hz
        f = design_resampler_filter(src_rate_hz, dst_rate_hz)
        self._up, self._down, self._taps, self._delay = f.up, f.down, f.taps, f.delay
        self._coefs = list(f.coefs)
        self._down_order = sorted(range(f.taps), key=lambda j: (j % f.down, j))
        self.reset()

    def reset(self) -> None:
        """Forget all history."""
        self._x: list[float] = []  # every input sample, after taps-1 zeros of history
        self._n_in = 0
        self._k_next = 0

    def _dot(self, p: int, n: int) -> float:
        taps = self._taps
        c = self._coefs[p * taps : (p + 1) * taps]
        start = n  # x index n - (taps-1) is list index n, given the zero prefix
        x = self._x
        if self._down == 1 and self._up > 1:
            # integer upsampling: the taps of each output are summed one after another
            total = 0.0
            for j in range(taps):
                total = _f32(total + _f32(c[j] * x[start + j]))
            return total
        if self._up == 1 and 1 < self._down <= 8:
            # integer downsampling: summed one after another, ordered by (j mod M, j)
            total = 0.0
            for j in self._down_order:
                total = _f32(total + _f32(c[j] * x[start + j]))
            return total
        acc = [0.0] * LANES
        for j in range(taps):
            lane = j % LANES
            acc[lane] = _f32(acc[lane] + _f32(c[j] * x[start + j]))
        s0, s1 = _f32(acc[0] + acc[4]), _f32(acc[1] + acc[5])
        s2, s3 = _f32(acc[2] + acc[6]), _f32(acc[3] + acc[7])
        return _f32(_f32(s0 + s2) + _f32(s1 + s3))

    def _emit(self, count: int) -> bytes:
        out = []
        for _ in range(count):
            t = self._k_next * self._down + self._delay
            n, p = divmod(t, self._up)
            out.append(_round16(self._dot(p, n)))
            self._k_next += 1
        return struct.pack(f"<{len(out)}h", *out)

    def _ready(self) -> int:
        lim = self._n_in * self._up - self._delay
        if lim <= 0:
            return 0
        kmax = -(-lim // self._down)
        return max(0, kmax - self._k_next)

    def process(self, pcm16: Buffer) -> bytes:
        """Feed PCM16 LE; returns the output that is ready."""
        raw = memoryview(pcm16).cast("B")
        if len(raw) % 2:
            raise ValueError(f"PCM16 input must have an even number of bytes, got {len(raw)}")
        if not self._x:
            self._x = [0.0] * (self._taps - 1)
        self._x.extend(float(s) for s in struct.unpack(f"<{len(raw) // 2}h", raw))
        self._n_in += len(raw) // 2
        return self._emit(self._ready())

    def flush(self) -> bytes:
        """Emit the tail, then start a new stream."""
        if not self._x:
            self._x = [0.0] * (self._taps - 1)
        total = -(-self._n_in * self._up // self._down)
        count = max(0, total - self._k_next)
        if count:
            last_t = (self._k_next + count - 1) * self._down + self._delay
            need = last_t // self._up + 1 + (self._taps - 1) - len(self._x)
            self._x.extend([0.0] * max(0, need))
        out = self._emit(count)
        self.reset()
        return out
