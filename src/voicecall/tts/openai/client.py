"""The openai TTS client: the SDK's streamed speech response, read chunk by chunk."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import openai
from openai import AsyncOpenAI

from voicecall.tts.base import TtsProvider
from voicecall.tts.errors import TtsAuthError, TtsError, TtsTimeout
from voicecall.tts.openai.protocol import OpenAITtsSettings, output_format, speech_request
from voicecall.tts.protocol import parse_settings

__all__ = ["OpenAITts", "create_provider"]


class OpenAITts(TtsProvider):
    """OpenAI speech over one SDK client (its own HTTP pool, closed by :meth:`aclose`)."""

    provider_id = "openai"

    def __init__(self, settings: OpenAITtsSettings, *, timeout_s: float) -> None:
        super().__init__(output_format(settings), timeout_s=timeout_s)
        self.settings = settings
        # The chain owns retries (it moves on to the next provider), so the SDK makes none.
        self._client = AsyncOpenAI(
            api_key=settings.api_key,
            base_url=settings.base_url.rstrip("/"),
            max_retries=0,
            timeout=timeout_s,
        )

    async def _stream(self, text: str) -> AsyncGenerator[bytes, None]:
        request = speech_request(self.settings, text)
        speech = self._client.audio.speech.with_streaming_response
        try:
            async with speech.create(**request) as response:
                async for chunk in response.iter_bytes():
                    yield chunk
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise TtsAuthError(
                f"openai TTS rejected the API key (HTTP {exc.status_code})"
            ) from None
        except openai.APIStatusError as exc:
            raise TtsError(f"openai TTS failed: HTTP {exc.status_code}: {exc.message}") from None
        except openai.APITimeoutError:
            raise TtsTimeout("openai TTS request timed out") from None
        except openai.APIConnectionError as exc:
            raise TtsError(f"openai TTS unreachable: {exc.__cause__ or exc}") from None

    async def aclose(self) -> None:
        await self._client.close()


def create_provider(
    raw: Mapping[str, Any], *, timeout_s: float, http_session: Any = None
) -> OpenAITts:
    """A provider for `tts.providers.openai` (the shared aiohttp session is not used)."""
    return OpenAITts(parse_settings(OpenAITtsSettings, raw, "openai"), timeout_s=timeout_s)
