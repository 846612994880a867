"""ElevenLabs streaming-speech requests (SPEC §8.3) and their error bodies; no I/O here."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import orjson
from pydantic import AliasChoices, Field

from voicecall.tts.audio import OutputFormat, parse_output_format
from voicecall.tts.protocol import ProviderSettings

__all__ = [
    "DEFAULT_BASE_URL",
    "ElevenLabsTtsSettings",
    "SpeechRequest",
    "error_message",
    "output_format",
    "speech_request",
]

DEFAULT_BASE_URL = "https://api.elevenlabs.io"


class ElevenLabsTtsSettings(ProviderSettings):
    """`tts.providers.elevenlabs` (SPEC §1.7: `voiceId` required)."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL, min_length=1, validation_alias=AliasChoices("baseUrl")
    )
    voice_id: str = Field(min_length=1, validation_alias=AliasChoices("voiceId", "voice_id"))
    model_id: str = Field(
        default="eleven_multilingual_v2",
        min_length=1,
        validation_alias=AliasChoices("modelId", "model_id"),
    )
    # µ-law 8 kHz is what the carriers play; `pcm_<rate>` is accepted and converted.
    output_format: str = Field(
        default="ulaw_8000", validation_alias=AliasChoices("outputFormat", "output_format")
    )


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    """One HTTP request: POST `url` with `headers` and the JSON `body`."""

    url: str
    headers: dict[str, str]
    body: bytes


def output_format(settings: ElevenLabsTtsSettings) -> OutputFormat:
    """What the configured `output_format` returns (raises for one we cannot play)."""
    return parse_output_format(settings.output_format)


def speech_request(settings: ElevenLabsTtsSettings, text: str) -> SpeechRequest:
    """`POST {baseUrl}/v1/text-to-speech/{voiceId}/stream?output_format=...` with `xi-api-key`."""
    base = settings.base_url.rstrip("/")
    voice = quote(settings.voice_id, safe="")
    query = urlencode({"output_format": settings.output_format})
    return SpeechRequest(
        url=f"{base}/v1/text-to-speech/{voice}/stream?{query}",
        headers={
            "xi-api-key": settings.api_key,
            "Content-Type": "application/json",
            "Accept": "*/*",
        },
        body=orjson.dumps({"text": text, "model_id": settings.model_id}),
    )


def error_message(status: int, body: bytes) -> str:
    """A one-line reason from an error response (`{"detail": {"status", "message"}}` or text)."""
    detail: Any = None
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
        detail = orjson.loads(body).get("detail")
    if isinstance(detail, dict):
        detail = detail.get("message") or detail.get("status")
    text = str(detail) if detail else body.decode("utf-8", "replace").strip()
    return f"HTTP {status}" + (f": {text[:200]}" if text else "")
