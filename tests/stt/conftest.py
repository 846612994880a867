"""Fixtures for the STT tests: the five providers with their fakes, and an event recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.stt_common import API_KEY, FakeSttServer
from tests.fakes.stt_deepgram import FakeDeepgram
from tests.fakes.stt_elevenlabs import FakeElevenLabs
from tests.fakes.stt_mistral import FakeMistral
from tests.fakes.stt_openai import FakeOpenAI
from tests.fakes.stt_xai import FakeXai

from voicecall.config import StreamingConfig
from voicecall.stt import (
    FinalTranscript,
    PartialTranscript,
    SessionReady,
    SpeechStarted,
    SttEvent,
    TranscriptionError,
)

DATA = Path(__file__).resolve().parents[1] / "data"
FRAME_BYTES = 160  # 20 ms of µ-law 8 kHz


@dataclass(frozen=True)
class Case:
    """A provider, its fake, and the settings a test call uses."""

    provider: str
    fake: type[FakeSttServer]
    base_path: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def config(self, fake: FakeSttServer, **settings: Any) -> StreamingConfig:
        """`streaming` aimed at the fake."""
        raw = {
            "apiKey": API_KEY,
            "baseUrl": fake.base_url + self.base_path,
            **self.settings,
            **settings,
        }
        return StreamingConfig.model_validate(
            {"enabled": True, "provider": self.provider, "providers": {self.provider: raw}}
        )


CASES = [
    Case("openai", FakeOpenAI, base_path="/v1"),
    Case("deepgram", FakeDeepgram),
    Case("elevenlabs", FakeElevenLabs),
    # Voxtral has no turn detection: the local gate flushes after 300 ms of quiet here so that
    # the 1 s pause between the two recorded utterances ends the first turn.
    Case("mistral", FakeMistral, settings={"silenceDurationMs": 300}),
    Case("xai", FakeXai),
]


def audio(name: str) -> bytes:
    """A recorded µ-law clip from tests/data."""
    return (DATA / f"{name}.ulaw").read_bytes()


async def stream(send: Callable[[bytes], None], data: bytes) -> None:
    """Feeds 20 ms frames as fast as the loop allows (yielding between frames)."""
    for offset in range(0, len(data), FRAME_BYTES):
        send(data[offset : offset + FRAME_BYTES])
        await asyncio.sleep(0)


class Events:
    """Records session events and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.items: list[SttEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: SttEvent) -> None:
        self.items.append(event)
        self._changed.set()

    async def wait_for(self, condition: Callable[[Events], bool], timeout_s: float = 20) -> None:
        """Returns once `condition(self)` holds (the timeout only guards against hangs)."""
        async with asyncio.timeout(timeout_s):
            while not condition(self):
                self._changed.clear()
                await self._changed.wait()

    @property
    def finals(self) -> list[str]:
        """Final transcripts, in order."""
        return [e.text for e in self.items if isinstance(e, FinalTranscript)]

    @property
    def partials(self) -> list[str]:
        """Partial transcripts, in order."""
        return [e.text for e in self.items if isinstance(e, PartialTranscript)]

    @property
    def errors(self) -> list[TranscriptionError]:
        """Error events."""
        return [e for e in self.items if isinstance(e, TranscriptionError)]

    @property
    def readies(self) -> list[SessionReady]:
        """Ready events."""
        return [e for e in self.items if isinstance(e, SessionReady)]

    @property
    def speech_starts(self) -> int:
        """How many speech-started events arrived."""
        return sum(isinstance(e, SpeechStarted) for e in self.items)
