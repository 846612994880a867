"""The openai and elevenlabs providers against faithful fakes: audio, streaming, failures."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from tests.fakes.tts_common import API_KEY, FakeTtsServer
from tests.tts.conftest import collect, expected_ulaw_from_pcm24k

from voicecall.tts import TtsAuthError, TtsError, TtsProvider, TtsTimeout
from voicecall.tts.elevenlabs.client import create_provider as create_elevenlabs
from voicecall.tts.openai.client import create_provider as create_openai

TEXT = "Hello there."


@dataclass(frozen=True)
class Case:
    """A provider under test: its fake fixture, factory and base-URL suffix."""

    name: str
    fake_fixture: str
    factory: Callable[..., TtsProvider]
    base_path: str
    settings: dict[str, Any]

    def provider(self, fake: FakeTtsServer, *, timeout_s: float = 5.0, **settings: Any) -> Any:
        """The provider aimed at `fake`."""
        raw = {
            "apiKey": API_KEY,
            "baseUrl": fake.base_url + self.base_path,
            **self.settings,
            **settings,
        }
        return self.factory(raw, timeout_s=timeout_s)


CASES = [
    Case("openai", "openai_fake", create_openai, "/v1", {}),
    Case("elevenlabs", "elevenlabs_fake", create_elevenlabs, "", {"voiceId": "VOICE123"}),
]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> tuple[Case, FakeTtsServer]:
    """Each provider with its running fake."""
    spec: Case = request.param
    return spec, request.getfixturevalue(spec.fake_fixture)


def expected_ulaw(spec: Case, fake: FakeTtsServer) -> bytes:
    """What the caller should hear: the fake's audio converted by the media core."""
    if spec.name == "openai":
        return expected_ulaw_from_pcm24k(fake.audio)
    return fake.audio


async def test_synthesis_is_the_providers_audio_as_ulaw(case: tuple[Case, FakeTtsServer]) -> None:
    """Streamed provider audio comes out as µ-law 8 kHz equal to the media core's conversion."""
    spec, fake = case
    provider = spec.provider(fake)
    try:
        audio = await collect(provider.synthesize(TEXT))
    finally:
        await provider.aclose()
    assert audio == expected_ulaw(spec, fake)
    assert len(audio) == len(expected_ulaw(spec, fake))
    assert fake.problems == []
    [request] = fake.requests
    text_key = "input" if spec.name == "openai" else "text"
    assert request.body[text_key] == TEXT


async def test_request_carries_configured_model_and_voice(
    openai_fake: Any, elevenlabs_fake: Any
) -> None:
    """Configured model, voice and instructions reach the providers' request bodies."""
    openai_fake.expected_model, openai_fake.expected_voice = "tts-1", "nova"
    openai = create_openai(
        {
            "apiKey": API_KEY,
            "baseUrl": openai_fake.base_url + "/v1",
            "model": "tts-1",
            "voice": "nova",
            "instructions": "Speak calmly.",
        },
        timeout_s=5.0,
    )
    elevenlabs_fake.expected_voice_id, elevenlabs_fake.expected_model_id = "V2", "eleven_flash_v2_5"
    eleven = create_elevenlabs(
        {
            "apiKey": API_KEY,
            "baseUrl": elevenlabs_fake.base_url,
            "voiceId": "V2",
            "modelId": "eleven_flash_v2_5",
        },
        timeout_s=5.0,
    )
    try:
        await collect(openai.synthesize(TEXT))
        await collect(eleven.synthesize(TEXT))
    finally:
        await openai.aclose()
        await eleven.aclose()
    assert openai_fake.problems == [] and elevenlabs_fake.problems == []
    assert openai_fake.requests[0].body["instructions"] == "Speak calmly."
    assert openai_fake.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    assert elevenlabs_fake.requests[0].headers["xi-api-key"] == API_KEY
    assert elevenlabs_fake.requests[0].body == {"text": TEXT, "model_id": "eleven_flash_v2_5"}


async def test_first_audio_arrives_while_the_provider_is_still_streaming(
    case: tuple[Case, FakeTtsServer],
) -> None:
    """The first µ-law chunk is yielded before the fake has finished sending its response."""
    spec, fake = case
    fake.gate.clear()  # the fake holds everything after its first chunk until the gate opens
    provider = spec.provider(fake)
    stream = provider.synthesize(TEXT)
    try:
        first = await asyncio.wait_for(anext(stream), 10)
        assert first
        assert fake.first_chunk_sent.is_set() and not fake.finished.is_set()
        fake.gate.set()
        rest = b"".join([chunk async for chunk in stream])
        assert fake.finished.is_set()
        assert first + rest == expected_ulaw(spec, fake)
    finally:
        await stream.aclose()
        await provider.aclose()


async def test_closing_the_stream_cancels_the_request(case: tuple[Case, FakeTtsServer]) -> None:
    """Closing the audio iterator early closes the HTTP request at the provider."""
    spec, fake = case
    fake.gate.clear()
    fake.endless = True
    provider = spec.provider(fake)
    try:
        stream = provider.synthesize(TEXT)
        assert await asyncio.wait_for(anext(stream), 10)
        await stream.aclose()
        fake.gate.set()
        await asyncio.wait_for(fake.disconnected.wait(), 10)
    finally:
        await provider.aclose()
    assert not fake.finished.is_set()
    assert fake.problems == []


async def test_a_wrong_api_key_is_an_auth_error(case: tuple[Case, FakeTtsServer]) -> None:
    """A rejected key raises TtsAuthError naming the provider and the HTTP status."""
    spec, fake = case
    provider = spec.provider(fake, apiKey="wrong-key")
    try:
        with pytest.raises(
            TtsAuthError, match=rf"^{spec.name} TTS rejected the API key \(HTTP 401\)"
        ):
            await collect(provider.synthesize(TEXT))
    finally:
        await provider.aclose()


async def test_a_server_error_is_a_clear_error(case: tuple[Case, FakeTtsServer]) -> None:
    """An HTTP 500 raises TtsError with the provider's name, the status and its message."""
    spec, fake = case
    fake.fail_status = 500
    provider = spec.provider(fake)
    try:
        with pytest.raises(TtsError, match=rf"^{spec.name} TTS failed: HTTP 500") as info:
            await collect(provider.synthesize(TEXT))
    finally:
        await provider.aclose()
    assert not isinstance(info.value, TtsAuthError)


async def test_a_provider_that_sends_nothing_times_out(case: tuple[Case, FakeTtsServer]) -> None:
    """A provider that never sends audio fails with TtsTimeout after the configured limit."""
    spec, fake = case
    fake.stall = True
    provider = spec.provider(fake, timeout_s=0.3)
    try:
        with pytest.raises(TtsTimeout, match=rf"^{spec.name} TTS sent no audio within 300 ms"):
            await collect(provider.synthesize(TEXT))
    finally:
        await provider.aclose()


async def test_an_unreachable_provider_is_a_clear_error(case: tuple[Case, FakeTtsServer]) -> None:
    """A provider whose port refuses connections fails with a TtsError naming it."""
    spec, fake = case
    provider = spec.provider(fake)
    await fake.__aexit__(None, None, None)  # nothing listens on the port any more
    try:
        with pytest.raises(TtsError, match=rf"^{spec.name} TTS (unreachable|failed)"):
            await collect(provider.synthesize(TEXT))
    finally:
        with contextlib.suppress(Exception):
            await provider.aclose()
