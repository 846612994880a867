"""The per-frame inbound pump (Twilio media JSON in -> STT send) vs the common Python path.

Ours: ``InboundPump`` over ``TwilioStreamProtocol`` (orjson, strict base64, jitter buffer, VAD)
into a real, unstarted Deepgram ``SttSession.send_audio`` (µ-law passes straight through).
Common path: ``json.loads`` + ``base64.b64decode`` + ``audioop.ulaw2lin`` + soxr VHQ to 16 kHz,
appended to a bounded queue, with no jitter buffer and no VAD. Both take one streamed
call-second (50 frames) per round. ``python -m benchmarks.test_bench_stream_pump`` prints the
CPU time per streamed call-second of both.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import soxr

from voicecall.carriers.twilio.stream import TwilioStreamProtocol
from voicecall.config import StreamingConfig
from voicecall.media import pcm16_to_ulaw
from voicecall.streaming import GarbageLog, InboundPump
from voicecall.stt import create_stt_session

FRAMES_PER_SECOND = 50
_SID = "MZ" + "0" * 32


def _frame(index: int) -> bytes:
    t0 = index * 160
    pcm = b"".join(
        round(6000 * math.sin(2 * math.pi * 440 * (t0 + i) / 8000)).to_bytes(
            2, "little", signed=True
        )
        for i in range(160)
    )
    return pcm16_to_ulaw(pcm)


_PAYLOADS = [base64.b64encode(_frame(i)).decode() for i in range(FRAMES_PER_SECOND)]


def twilio_messages() -> Iterator[str]:
    """Endless Twilio ``media`` messages with consecutive chunk numbers, as Twilio sends them."""
    for chunk in itertools.count(1):
        payload = _PAYLOADS[chunk % FRAMES_PER_SECOND]
        yield json.dumps(
            {
                "event": "media",
                "sequenceNumber": str(chunk + 1),
                "media": {
                    "track": "inbound",
                    "chunk": str(chunk),
                    "timestamp": str(20 * (chunk - 1)),
                    "payload": payload,
                },
                "streamSid": _SID,
            }
        )


def _call_seconds(count: int) -> list[list[str]]:
    messages = twilio_messages()
    return [[next(messages) for _ in range(FRAMES_PER_SECOND)] for _ in range(count)]


def ours() -> Callable[[list[str]], None]:
    """One call's inbound pump feeding a real Deepgram session's send_audio."""
    config = StreamingConfig.model_validate(
        {"enabled": True, "providers": {"deepgram": {"apiKey": "k", "baseUrl": "ws://127.0.0.1:9"}}}
    )
    session = create_stt_session(config, "deepgram", on_event=lambda _: None, env={})
    pump = InboundPump(TwilioStreamProtocol(), garbage=GarbageLog("bench"), sink=session.send_audio)
    feed = pump.feed

    def second(messages: list[str]) -> None:
        for text in messages:
            feed(text)

    return second


def common(audioop: ModuleType) -> Callable[[list[str]], None]:
    """stdlib json + base64 + audioop.ulaw2lin + soxr VHQ 8k->16k into a bounded queue."""
    stream = soxr.ResampleStream(8000, 16000, 1, dtype="int16", quality="VHQ")
    loads, b64decode, ulaw2lin = json.loads, base64.b64decode, audioop.ulaw2lin
    chunk, frombuffer = stream.resample_chunk, np.frombuffer
    queue: deque[bytes] = deque(maxlen=4096)
    append = queue.append

    def second(messages: list[str]) -> None:
        for text in messages:
            message = loads(text)
            if message["event"] != "media":
                continue
            ulaw = b64decode(message["media"]["payload"])
            append(chunk(frombuffer(ulaw2lin(ulaw, 2), dtype=np.int16)).tobytes())

    return second


def cpu_us_per_call_second(second: Callable[[list[str]], None], seconds: int = 300) -> float:
    """Process CPU time per streamed call-second (50 frames), in µs."""
    batches = _call_seconds(seconds)
    for batch in batches[:10]:  # warm up
        second(batch)
    start = time.process_time()
    for batch in batches:
        second(batch)
    return (time.process_time() - start) / seconds * 1e6


@pytest.mark.benchmark(group="stream-pump: one call-second (50 Twilio media frames) in")
@pytest.mark.parametrize("contender", ["voicecall", "common"])
def test_inbound_pump_call_second(benchmark: Any, audioop: ModuleType, contender: str) -> None:
    """50 Twilio media messages through the inbound path, ours vs the common Python path."""
    second = ours() if contender == "voicecall" else common(audioop)
    batches = itertools.cycle(_call_seconds(64))
    benchmark(lambda: second(next(batches)))


def test_report_cpu_per_streamed_call_second(
    audioop: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """Prints the CPU µs per streamed call-second of the inbound path, ours and the common one."""
    ours_us = cpu_us_per_call_second(ours(), 100)
    common_us = cpu_us_per_call_second(common(audioop), 100)
    with capsys.disabled():
        print(
            f"\ninbound pump CPU per streamed call-second: voicecall {ours_us:.0f} us, "
            f"common path {common_us:.0f} us ({common_us / ours_us:.2f}x)"
        )


if __name__ == "__main__":
    from benchmarks.quality import load_audioop

    audio = load_audioop()
    ours_us = cpu_us_per_call_second(ours())
    common_us = cpu_us_per_call_second(common(audio))
    print(f"voicecall inbound pump: {ours_us:.1f} us CPU per streamed call-second (50 frames)")
    print(f"common Python path:     {common_us:.1f} us CPU per streamed call-second")
    print(f"ratio: {common_us / ours_us:.2f}x")
