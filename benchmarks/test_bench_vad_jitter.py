"""Compiled VAD framer and jitter buffer against their pure-Python references, per 20 ms frame."""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import pytest

from voicecall.media import jitter as compiled_jitter
from voicecall.media import vad as compiled_vad
from voicecall.media.ref import jitter as reference_jitter
from voicecall.media.ref import vad as reference_vad

__all__: list[str] = []

# One 20 ms u-law frame of a 440 Hz tone at about -20 dBFS (speech-like level, not silence).
FRAME = bytes(int(0x80 + 0x30 * math.sin(2 * math.pi * 440 * i / 8000)) & 0xFF for i in range(160))


@pytest.mark.benchmark(group="vad: one 20 ms u-law frame, compiled vs pure-Python reference")
@pytest.mark.parametrize("impl", [compiled_vad, reference_vad], ids=["c", "py"])
def test_vad_frame(benchmark: Any, impl: ModuleType) -> None:
    """Time VadFramer.process on exactly one frame in the steady state (no pending bytes)."""
    vad = impl.VadFramer()
    process = vad.process
    for _ in range(100):
        process(FRAME)
    benchmark(process, FRAME)
    assert vad.frames > 100


@pytest.mark.benchmark(group="jitter: one push + pop of a 160-byte frame, compiled vs reference")
@pytest.mark.parametrize("impl", [compiled_jitter, reference_jitter], ids=["c", "py"])
def test_jitter_push_pop(benchmark: Any, impl: ModuleType) -> None:
    """Time one in-order push followed by one pop with the buffer at its target depth."""
    jb = impl.JitterBuffer(target_depth=3)
    push, pop = jb.push, jb.pop
    for seq in range(3):
        push(seq, seq * 160, FRAME)
    seq = 3

    def push_pop() -> bytes:
        nonlocal seq
        push(seq, seq * 160, FRAME)
        seq = (seq + 1) & 0xFFFF
        return pop()

    benchmark(push_pop)
    assert jb.stats.lost == 0 and jb.depth == 3
