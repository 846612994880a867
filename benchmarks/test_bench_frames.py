"""One carrier media frame, base64 u-law <-> PCM16: the fused calls vs the common Python path."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import soxr

from voicecall.media import FrameDecoder, FrameEncoder, pcm16_to_ulaw

_T = [i / 8000 for i in range(160)]
PAYLOAD = base64.b64encode(
    pcm16_to_ulaw(
        b"".join(
            round(8000 * math.sin(2 * math.pi * 440 * t)).to_bytes(2, "little", signed=True)
            for t in _T
        )
    )
).decode("ascii")  # what a Twilio "media" message carries: 20 ms of 8 kHz u-law as text
PCM_24K = np.round(8000 * np.sin(2 * np.pi * 440 * np.arange(480) / 24000)).astype("<i2").tobytes()


def _common_inbound(audioop: ModuleType, dst_rate_hz: int) -> Callable[[str], bytes]:
    """base64 + audioop.ulaw2lin + soxr VHQ stream (Pipecat's choice) + bytes, as apps do today."""
    stream = soxr.ResampleStream(8000, dst_rate_hz, 1, dtype="int16", quality="VHQ")
    b64decode, ulaw2lin, chunk, frombuffer = (
        base64.b64decode,
        audioop.ulaw2lin,
        stream.resample_chunk,
        np.frombuffer,
    )

    def decode(payload: str) -> bytes:
        return bytes(chunk(frombuffer(ulaw2lin(b64decode(payload), 2), dtype=np.int16)).tobytes())

    return decode


def _common_outbound(audioop: ModuleType) -> Callable[[bytes], bytes]:
    """soxr VHQ 24k->8k + audioop.lin2ulaw + base64, as apps do today."""
    stream = soxr.ResampleStream(24000, 8000, 1, dtype="int16", quality="VHQ")
    b64encode, lin2ulaw, chunk, frombuffer = (
        base64.b64encode,
        audioop.lin2ulaw,
        stream.resample_chunk,
        np.frombuffer,
    )

    def encode(pcm16: bytes) -> bytes:
        return b64encode(lin2ulaw(chunk(frombuffer(pcm16, dtype=np.int16)).tobytes(), 2))

    return encode


@pytest.mark.parametrize("contender", ["voicecall", "common"])
@pytest.mark.parametrize("dst_rate_hz", [16000, 24000])
def test_inbound_frame(
    benchmark: Any, audioop: ModuleType, dst_rate_hz: int, contender: str
) -> None:
    """Time one inbound frame: base64 u-law text -> PCM16 at 16 or 24 kHz."""
    benchmark.group = f"frame in: base64 u-law 20 ms -> PCM16 {dst_rate_hz // 1000} kHz"
    if contender == "voicecall":
        fn: Callable[[Any], bytes] = FrameDecoder(dst_rate_hz, "ulaw").decode
    else:
        fn = _common_inbound(audioop, dst_rate_hz)
    for _ in range(50):
        fn(PAYLOAD)
    out = benchmark(fn, PAYLOAD)
    assert len(out) % 2 == 0


@pytest.mark.parametrize("contender", ["voicecall", "common"])
def test_outbound_frame(benchmark: Any, audioop: ModuleType, contender: str) -> None:
    """Time one outbound frame: 20 ms of 24 kHz PCM16 -> base64 u-law at 8 kHz."""
    benchmark.group = "frame out: PCM16 24 kHz 20 ms -> base64 u-law"
    fn = (
        FrameEncoder(24000, "ulaw").encode
        if contender == "voicecall"
        else _common_outbound(audioop)
    )
    for _ in range(50):
        fn(PCM_24K)
    out = benchmark(fn, PCM_24K)
    assert len(out) % 4 == 0
