"""What the realtime end-to-end tests share: audio, config blocks, the phone, the harness base."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.fakes.realtime_openai import API_KEY, FakeOpenAIRealtime
from tests.streaming.media import TwilioMediaClient

from voicecall.calls.record import CallRecord
from voicecall.gateway import Gateway

__all__ = [
    "FRAME",
    "GREETING",
    "OPENING",
    "GatewayHarness",
    "RealtimePhone",
    "audio",
    "close_all",
    "instructions",
    "openai_realtime",
    "served_on",
]

FRAME = 160  # 20 ms of µ-law 8 kHz
GREETING = "Hi friend, how can I help?"
OPENING = "Hello, this is your assistant calling about tomorrow."


def audio(frames: int, seed: int) -> bytes:
    """Distinct µ-law audio: ``frames`` 20 ms frames."""
    return bytes((seed * 31 + i) % 120 + 1 for i in range(frames * FRAME))


def served_on(port: int) -> dict[str, Any]:
    """Config keys for a webhook listener on ``port`` reachable by the local fakes."""
    return {
        "webhookSecurity": {"allowPrivateWebhookUrl": True},
        "publicUrl": f"http://127.0.0.1:{port}/voice/webhook",
        "serve": {"port": port},
        "rpc": {"port": 0},
    }


def openai_realtime(fake: FakeOpenAIRealtime) -> dict[str, Any]:
    """The ``realtime`` config block aimed at the fake OpenAI Realtime server."""
    return {
        "enabled": True,
        "provider": "openai",
        "providers": {"openai": {"apiKey": API_KEY, "baseUrl": fake.base_url}},
    }


def instructions(fake: FakeOpenAIRealtime) -> str:
    """The instructions of the first ``session.update`` the fake received."""
    updates = fake.connection.of_type("session.update")
    assert updates
    return str(updates[0]["session"]["instructions"])


async def close_all(stack: list[Callable[[], Any]]) -> None:
    """Close what a fixture opened, newest first, whatever fails."""
    for close in reversed(stack):
        with contextlib.suppress(Exception):
            await close()


class RealtimePhone(TwilioMediaClient):
    """The carrier end of a realtime socket in Twilio frames: plays at once and echoes marks."""

    async def acknowledge(self, frame: dict[str, Any]) -> None:
        if frame.get("event") == "mark":
            name = frame["mark"]["name"]
            self.acknowledged.append(name)
            await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    def media_frames(self) -> list[bytes]:
        return [
            base64.b64decode(f["media"]["payload"]) for f in self.received if f["event"] == "media"
        ]

    def played(self) -> bytes:
        return b"".join(self.media_frames())


@dataclass
class GatewayHarness:
    """A running gateway and ways to look at its calls."""

    gateway: Gateway

    @property
    def runtime(self) -> Any:
        return self.gateway.runtime

    def record(self, call_id: str) -> CallRecord:
        record = self.runtime.get_record(call_id)
        assert record is not None
        return record  # type: ignore[no-any-return]

    def transcript(self, call_id: str) -> list[tuple[str, str]]:
        return [(e.speaker, e.text) for e in self.record(call_id).transcript]

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 30) -> None:
        """Wait until ``predicate()`` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.01)
