"""OpenAI speech requests (SPEC §8.3): `{model, voice, input, response_format[, instructions]}`."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field

from voicecall.tts.audio import OutputFormat, parse_output_format
from voicecall.tts.errors import UnsupportedOutputFormat
from voicecall.tts.protocol import ProviderSettings

__all__ = ["DEFAULT_BASE_URL", "OpenAITtsSettings", "output_format", "speech_request"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The formats the speech API offers that we can play without a decoder: raw PCM16 24 kHz, WAV.
_PLAYABLE = ("pcm", "wav")


class OpenAITtsSettings(ProviderSettings):
    """`tts.providers.openai` (SPEC §1.7 defaults)."""

    base_url: str = Field(
        default=DEFAULT_BASE_URL, min_length=1, validation_alias=AliasChoices("baseUrl")
    )
    model: str = Field(default="gpt-4o-mini-tts", min_length=1)
    voice: str = Field(default="alloy", min_length=1)
    instructions: str | None = None
    response_format: str = Field(
        default="pcm", validation_alias=AliasChoices("responseFormat", "response_format")
    )


def output_format(settings: OpenAITtsSettings) -> OutputFormat:
    """What the configured `response_format` returns; anything else is unsupported."""
    if settings.response_format not in _PLAYABLE:
        raise UnsupportedOutputFormat(
            f"unsupported telephony TTS output format {settings.response_format}"
        )
    return parse_output_format(settings.response_format)


def speech_request(settings: OpenAITtsSettings, text: str) -> dict[str, Any]:
    """The keyword arguments of the SDK's `audio.speech.create` (= the JSON body)."""
    request: dict[str, Any] = {
        "model": settings.model,
        "voice": settings.voice,
        "input": text,
        "response_format": settings.response_format,
    }
    if settings.instructions:
        request["instructions"] = settings.instructions
    return request
