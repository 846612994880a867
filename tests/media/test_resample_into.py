"""The allocation-free resampler form refuses a short buffer without consuming the input."""

from __future__ import annotations

import struct

import pytest

from voicecall.media import Resampler


def test_short_buffer_consumes_nothing() -> None:
    """After a too-small buffer, retrying the same input gives exactly the one-shot output."""
    pcm = struct.pack("<320h", *((i * 97) % 2000 - 1000 for i in range(320)))
    expected = Resampler(8000, 16000).process(pcm)
    r = Resampler(8000, 16000)
    need = r.output_bytes(len(pcm))
    assert need == len(expected)
    with pytest.raises(ValueError, match=f"{need} needed"):
        r.process_into(pcm, bytearray(need - 2))
    out = bytearray(need)
    assert r.process_into(pcm, out) == need
    assert bytes(out) == expected
