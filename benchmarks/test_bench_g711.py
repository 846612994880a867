"""G.711 encode/decode, ours vs the stdlib audioop, per 20 ms frame and per 1 s buffer."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest

import voicecall.media as media

# Speech-like PCM16 (a 440 Hz tone at about -12 dBFS plus a harmonic) and its u-law/A-law codes.
_SAMPLES = [
    round(
        8000 * math.sin(2 * math.pi * 440 * i / 8000)
        + 1500 * math.sin(2 * math.pi * 1320 * i / 8000)
    )
    for i in range(8000)
]
PCM_1S = b"".join(s.to_bytes(2, "little", signed=True) for s in _SAMPLES)
SIZES = {"frame": 160, "1s": 8000}  # samples
CONTENDERS = ("voicecall", "audioop")
LAWS = ("ulaw", "alaw")


def _codes(law: str, n: int) -> bytes:
    return bytes(getattr(media, f"pcm16_to_{law}")(PCM_1S[: 2 * n]))


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("law", LAWS)
def test_decode(benchmark: Any, audioop: ModuleType, law: str, size: str, contender: str) -> None:
    """Time decoding 160 codes (one carrier frame) or 8000 codes (1 s) to PCM16."""
    benchmark.group = f"g711 {law} decode, {size} ({SIZES[size]} samples)"
    codes = _codes(law, SIZES[size])
    if contender == "voicecall":
        out = benchmark(getattr(media, f"{law}_to_pcm16"), codes)
    else:
        out = benchmark(audioop.ulaw2lin if law == "ulaw" else audioop.alaw2lin, codes, 2)
    assert len(out) == 2 * len(codes)


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("law", LAWS)
def test_encode(benchmark: Any, audioop: ModuleType, law: str, size: str, contender: str) -> None:
    """Time encoding 160 samples (one carrier frame) or 8000 samples (1 s) of PCM16 to G.711."""
    benchmark.group = f"g711 {law} encode, {size} ({SIZES[size]} samples)"
    pcm = PCM_1S[: 2 * SIZES[size]]
    if contender == "voicecall":
        out = benchmark(getattr(media, f"pcm16_to_{law}"), pcm)
    else:
        out = benchmark(audioop.lin2ulaw if law == "ulaw" else audioop.lin2alaw, pcm, 2)
    assert out == _codes(law, SIZES[size])
