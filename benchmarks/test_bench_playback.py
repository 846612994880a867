"""CPU per call-second of outbound playback: our one-timer pacer vs one sleep per frame per call.

Ours: :class:`Playback` (one ``loop.call_at`` handle per call, absolute schedule, 2-frame lead)
writing Twilio media frames into a sink. Baseline: the common loop — per frame ``await
asyncio.sleep(due - now)``, ``base64`` + the same frame template, the same sink. Both play
``CALLS`` concurrent calls for one call-second (50 frames each) on a real event loop; the timer
is process CPU time, so the ratio is the CPU each approach costs per call-second.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from voicecall.carriers.twilio.stream import TwilioStreamProtocol
from voicecall.streaming.playback import FRAME_BYTES, FRAME_S, Playback

CALLS = 50
FRAMES = 50  # one call-second
_AUDIO = bytes(i % 251 for i in range(FRAMES * FRAME_BYTES))


def _protocol() -> TwilioStreamProtocol:
    proto = TwilioStreamProtocol()
    sid = "MZ" + "2" * 32
    start = {"streamSid": sid, "callSid": "CA1"}
    proto.parse(json.dumps({"event": "start", "streamSid": sid, "start": start}))
    return proto


async def _source() -> AsyncIterator[bytes]:
    yield _AUDIO


async def _ours() -> int:
    sent = 0

    def sink(_text: str) -> bool:
        nonlocal sent
        sent += 1
        return True

    items = []
    for _ in range(CALLS):
        proto = _protocol()
        playback = Playback(
            sink=sink,
            build_media=proto.build_media,
            build_mark=proto.build_mark,
            build_clear=proto.build_clear,
        )
        items.append((playback, playback.enqueue(_source(), "x")))
    while any(playback.speaking and item.frames_sent < FRAMES for playback, item in items):
        await asyncio.sleep(FRAME_S)
    for playback, _ in items:
        playback.close()
    return sent


async def _naive_call(sink: Callable[[str], bool]) -> None:
    proto = _protocol()
    loop = asyncio.get_running_loop()
    due = loop.time()
    async for chunk in _source():
        for start in range(0, len(chunk), FRAME_BYTES):
            payload = base64.b64encode(chunk[start : start + FRAME_BYTES]).decode("ascii")
            sink(proto.build_media(payload))
            due += FRAME_S
            await asyncio.sleep(max(0.0, due - loop.time()))
    sink(proto.build_mark("done"))


async def _naive() -> int:
    sent = 0

    def sink(_text: str) -> bool:
        nonlocal sent
        sent += 1
        return True

    await asyncio.gather(*(_naive_call(sink) for _ in range(CALLS)))
    return sent


CONTENDERS: dict[str, Callable[[], Any]] = {"voicecall": _ours, "sleep-per-frame": _naive}


@pytest.mark.parametrize("contender", list(CONTENDERS))
def test_playback_cpu_per_call_second(benchmark: Any, contender: str) -> None:
    """Process CPU to pace CALLS calls for one call-second each (divide by CALLS per call)."""
    benchmark.group = "playback pacing, 50 calls x 1 call-second (CPU)"
    benchmark._timer = time.process_time  # CPU, not wall: both take one second of wall time
    run = CONTENDERS[contender]
    sent = benchmark.pedantic(lambda: asyncio.run(run()), rounds=5, iterations=1)
    assert sent >= CALLS * FRAMES
