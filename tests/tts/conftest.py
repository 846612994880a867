"""Fixtures for the TTS tests: recorded speech in each provider's format, fakes, a collector."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import pytest
from tests.fakes.tts_common import API_KEY
from tests.fakes.tts_elevenlabs import FakeElevenLabsTts
from tests.fakes.tts_openai import FakeOpenAITts

from voicecall.media import Resampler, pcm16_to_ulaw, ulaw_to_pcm16

DATA = Path(__file__).resolve().parents[1] / "data"

__all__ = ["API_KEY", "collect", "expected_ulaw_from_pcm24k"]


@pytest.fixture(scope="session")
def speech_ulaw() -> bytes:
    """A recorded utterance, µ-law 8 kHz (what ElevenLabs would stream)."""
    return (DATA / "hello.ulaw").read_bytes()


@pytest.fixture(scope="session")
def speech_pcm24k(speech_ulaw: bytes) -> bytes:
    """The same utterance as PCM16 24 kHz (what OpenAI's `pcm` format streams)."""
    up = Resampler(8000, 24000)
    pcm8k = ulaw_to_pcm16(speech_ulaw)
    return up.process(pcm8k) + up.flush()


def expected_ulaw_from_pcm24k(pcm24k: bytes) -> bytes:
    """The media core's one-shot conversion of PCM16 24 kHz to µ-law 8 kHz."""
    down = Resampler(24000, 8000)
    return pcm16_to_ulaw(down.process(pcm24k) + down.flush())


async def collect(stream: AsyncGenerator[bytes, None]) -> bytes:
    """Every chunk of a synthesis, joined."""
    async with contextlib.aclosing(stream):
        return b"".join([chunk async for chunk in stream])


@pytest.fixture
async def openai_fake(speech_pcm24k: bytes) -> AsyncIterator[FakeOpenAITts]:
    """A fake OpenAI speech endpoint streaming the utterance as PCM16 24 kHz."""
    async with FakeOpenAITts(audio=speech_pcm24k, chunk_bytes=1200) as fake:
        yield fake


@pytest.fixture
async def elevenlabs_fake(speech_ulaw: bytes) -> AsyncIterator[FakeElevenLabsTts]:
    """A fake ElevenLabs streaming endpoint sending the utterance as µ-law 8 kHz."""
    async with FakeElevenLabsTts(audio=speech_ulaw, chunk_bytes=400) as fake:
        yield fake
