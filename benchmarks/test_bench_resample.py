"""Streaming resampling of one 20 ms frame: ours vs soxr (HQ, VHQ, LQ) and audioop.ratecv."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from quality import CONTENDERS, FRAME_MS, TABLE_PAIRS, Contender


def _frame(src: int) -> bytes:
    t = np.arange(src * FRAME_MS // 1000) / src
    noise = np.random.default_rng(src).normal(0, 300, len(t))
    return np.round(8000 * np.sin(2 * np.pi * 1000 * t) + noise).astype("<i2").tobytes()


@pytest.mark.parametrize("contender", CONTENDERS, ids=[c.name for c in CONTENDERS])
@pytest.mark.parametrize(
    "pair", TABLE_PAIRS, ids=[f"{s // 1000}k-{d // 1000}k" for s, d in TABLE_PAIRS]
)
def test_resample_frame(benchmark: Any, pair: tuple[int, int], contender: Contender) -> None:
    """Time one 20 ms frame through a running stream (each contender on its native input type)."""
    src, dst = pair
    benchmark.group = f"resample {src // 1000}k->{dst // 1000}k, one 20 ms frame"
    fn, to_arg = contender.hot(src, dst)
    arg = to_arg(_frame(src))
    for _ in range(50):  # past start-up buffering, into the steady state
        fn(arg)
    out = benchmark(fn, arg)
    assert out is not None
