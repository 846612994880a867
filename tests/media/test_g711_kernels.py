"""Both G.711 kernel sets (AVX2 where the CPU has it, portable tables) give identical bytes."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

import voicecall.media as media
from voicecall._media import g711 as compiled
from voicecall.media.ref import g711 as ref

ALL_PCM = struct.pack("<65536h", *range(-32768, 32768))
ALL_CODES = bytes(range(256))


@pytest.fixture(params=[True, False], ids=["simd", "tables"])
def kernels(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Select one kernel set for the test, restoring the default afterwards."""
    default = compiled.simd_kernels()
    active = compiled.simd_kernels(request.param)
    yield active
    compiled.simd_kernels(default)


def test_tables_can_be_forced() -> None:
    """Turning SIMD off is always possible, so the portable path stays tested on any CPU."""
    default = compiled.simd_kernels()
    try:
        assert compiled.simd_kernels(False) is False
    finally:
        compiled.simd_kernels(default)


@pytest.mark.parametrize("offset", [0, 1, 7, 15])
def test_every_pcm_value_encodes_like_the_reference(kernels: bool, offset: int) -> None:
    """All 65,536 PCM16 inputs encode to the G.711 reference codes, whatever the buffer offset."""
    pcm = ALL_PCM[2 * offset :] + ALL_PCM[: 2 * offset]
    assert media.pcm16_to_ulaw(pcm) == ref.pcm16_to_ulaw(pcm)
    assert media.pcm16_to_alaw(pcm) == ref.pcm16_to_alaw(pcm)


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 31, 33, 256 * 3 + 5])
def test_every_code_decodes_like_the_reference(kernels: bool, length: int) -> None:
    """Every code decodes to the reference sample for lengths around the vector width."""
    codes = (ALL_CODES * 4)[:length]
    assert media.ulaw_to_pcm16(codes) == ref.ulaw_to_pcm16(codes)
    assert media.alaw_to_pcm16(codes) == ref.alaw_to_pcm16(codes)
