"""Pure-Python G.711 u-law / A-law, computed per sample from the segment arithmetic (no tables)."""

from __future__ import annotations

import struct

from typing_extensions import Buffer

__all__ = [
    "alaw_decode_sample",
    "alaw_encode_sample",
    "alaw_to_pcm16",
    "pcm16_to_alaw",
    "pcm16_to_ulaw",
    "ulaw_decode_sample",
    "ulaw_encode_sample",
    "ulaw_to_pcm16",
]


def ulaw_encode_sample(sample: int) -> int:
    """u-law code of one signed 16-bit sample."""
    v = sample >> 2
    mask = 0x7F if v < 0 else 0xFF
    mag = min(-v if v < 0 else v, 8159) + 33
    seg = 0
    while seg < 8 and mag >= 0x40 << seg:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((mag >> (seg + 1)) & 0x0F)) ^ mask


def alaw_encode_sample(sample: int) -> int:
    """A-law code of one signed 16-bit sample."""
    v = sample >> 3
    if v >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        v = -v - 1
    seg = 0
    while seg < 8 and v >= 0x20 << seg:
        seg += 1
    if seg >= 8:
        return 0x7F ^ mask
    code = (seg << 4) | (((v >> 1) if seg < 2 else (v >> seg)) & 0x0F)
    return code ^ mask


def ulaw_decode_sample(code: int) -> int:
    """Signed 16-bit sample of one u-law code."""
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


def alaw_decode_sample(code: int) -> int:
    """Signed 16-bit sample of one A-law code."""
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


def _samples(data: Buffer) -> tuple[int, ...]:
    raw = memoryview(data).cast("B")
    if len(raw) % 2:
        raise ValueError(f"PCM16 input must have an even number of bytes, got {len(raw)}")
    return struct.unpack(f"<{len(raw) // 2}h", raw)


def ulaw_to_pcm16(data: Buffer) -> bytes:
    """Decode u-law to PCM16 LE."""
    codes = bytes(memoryview(data).cast("B"))
    return struct.pack(f"<{len(codes)}h", *(ulaw_decode_sample(c) for c in codes))


def alaw_to_pcm16(data: Buffer) -> bytes:
    """Decode A-law to PCM16 LE."""
    codes = bytes(memoryview(data).cast("B"))
    return struct.pack(f"<{len(codes)}h", *(alaw_decode_sample(c) for c in codes))


def pcm16_to_ulaw(data: Buffer) -> bytes:
    """Encode PCM16 LE to u-law."""
    return bytes(ulaw_encode_sample(s) for s in _samples(data))


def pcm16_to_alaw(data: Buffer) -> bytes:
    """Encode PCM16 LE to A-law."""
    return bytes(alaw_encode_sample(s) for s in _samples(data))
