"""Per-frame cost of the realtime bridge's sans-IO blocks: the barge-in gate and the pacer.

Gate: :class:`BargeInGate` measures one inbound 20 ms µ-law frame (RMS through the compiled
media core + the start/stop state machine) against two baselines that compute only the RMS:
µ-law decode + numpy, and a pure-Python loop over the samples with a decode table.

Pacer: one 20 ms step of :class:`RealtimePacer` in the steady state (push 160 bytes of model
audio, fire its timer, write one frame, a mark every 8th) against the bare minimum a pacer must
do per frame (slice the queue, base64, the carrier's frame template, the sink). The ratio is the
pacer's bookkeeping overhead (< 1: the bare loop is faster, as it must be).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from voicecall.carriers.twilio.stream import TwilioStreamProtocol
from voicecall.media import pcm16_to_ulaw, ulaw_to_pcm16
from voicecall.media.ref.g711 import ulaw_decode_sample
from voicecall.realtime.gate import BargeInGate
from voicecall.realtime.pacer import RealtimePacer
from voicecall.streaming.playback import FRAME_BYTES, FRAME_S

__all__: list[str] = []

# One 20 ms µ-law frame of speech-like audio (440 Hz + a harmonic, about -14 dBFS).
FRAME = pcm16_to_ulaw(
    b"".join(
        round(
            6000 * math.sin(2 * math.pi * 440 * i / 8000)
            + 1500 * math.sin(2 * math.pi * 1320 * i / 8000)
        ).to_bytes(2, "little", signed=True)
        for i in range(FRAME_BYTES)
    )
)
THRESHOLD = 0.035
_DECODE = tuple(ulaw_decode_sample(code) for code in range(256))


def _gate() -> Callable[[bytes], object]:
    return BargeInGate().process


def _numpy() -> Callable[[bytes], object]:
    def rms_numpy(frame: bytes) -> bool:
        samples = np.frombuffer(ulaw_to_pcm16(frame), dtype=np.int16).astype(np.float64)
        return math.sqrt(float(np.dot(samples, samples)) / len(samples)) / 32768 >= THRESHOLD

    return rms_numpy


def _python() -> Callable[[bytes], object]:
    def rms_python(frame: bytes) -> bool:
        acc = 0
        for code in frame:
            sample = _DECODE[code]
            acc += sample * sample
        return math.sqrt(acc / len(frame)) / 32768 >= THRESHOLD

    return rms_python


GATES: dict[str, Callable[[], Callable[[bytes], object]]] = {
    "voicecall": _gate,
    "numpy": _numpy,
    "pure-python": _python,
}


@pytest.mark.parametrize("contender", list(GATES))
def test_gate_per_frame(benchmark: Any, contender: str) -> None:
    """Time deciding loud/quiet for one 160-byte inbound frame (the gate also runs its state)."""
    benchmark.group = "realtime barge-in gate: one 20 ms u-law frame"
    check = GATES[contender]()
    for _ in range(50):
        check(FRAME)
    benchmark(check, FRAME)


# ---- pacer -----------------------------------------------------------------------------------


class _StepClock:
    """A clock the benchmark moves by hand; keeps the one pending timer of the pacer."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.callback: Callable[[], None] | None = None

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _StepClock:
        self.callback = callback
        return self

    def cancel(self) -> None:
        self.callback = None


def _protocol() -> TwilioStreamProtocol:
    proto = TwilioStreamProtocol()
    sid = "MZ" + "3" * 32
    proto.parse(json.dumps({"event": "start", "streamSid": sid, "start": {"streamSid": sid}}))
    return proto


def _pacer_step(sent: list[int]) -> Callable[[], None]:
    proto, clock = _protocol(), _StepClock()

    def sink(_text: str) -> bool:
        sent[0] += 1
        return True

    pacer = RealtimePacer(
        sink=sink,
        build_media=proto.build_media,
        build_mark=proto.build_mark,
        build_clear=proto.build_clear,
        clock=clock,
    )
    pacer.push(FRAME * 50, "item")

    def step() -> None:
        pacer.push(FRAME, "item")
        clock.now += FRAME_S
        callback, clock.callback = clock.callback, None
        if callback is not None:
            callback()

    return step


def _bare_step(sent: list[int]) -> Callable[[], None]:
    proto = _protocol()
    build_media = proto.build_media
    buf = bytearray(FRAME * 50)

    def sink(_text: str) -> bool:
        sent[0] += 1
        return True

    def step() -> None:
        buf.extend(FRAME)
        sink(build_media(base64.b64encode(buf[:FRAME_BYTES]).decode("ascii")))
        del buf[:FRAME_BYTES]

    return step


PACERS = {"voicecall": _pacer_step, "bare-frame-loop": _bare_step}


@pytest.mark.parametrize("contender", list(PACERS))
def test_pacer_per_frame(benchmark: Any, contender: str) -> None:
    """Time one 20 ms step: 160 bytes of model audio in, one paced carrier frame out."""
    benchmark.group = "realtime pacer: one 20 ms step (push + frame out)"
    sent = [0]
    step = PACERS[contender](sent)
    for _ in range(50):
        step()
    benchmark(step)
    assert sent[0] > 50
