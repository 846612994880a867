"""The elevenlabs TTS client: one streamed POST on the process's aiohttp session."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp

from voicecall.tts.base import TtsProvider
from voicecall.tts.elevenlabs.protocol import (
    ElevenLabsTtsSettings,
    error_message,
    output_format,
    speech_request,
)
from voicecall.tts.errors import TtsAuthError, TtsError
from voicecall.tts.protocol import parse_settings

__all__ = ["ElevenLabsTts", "create_provider"]


class ElevenLabsTts(TtsProvider):
    """ElevenLabs streaming speech; uses the shared session, or its own when given none."""

    provider_id = "elevenlabs"

    def __init__(
        self,
        settings: ElevenLabsTtsSettings,
        *,
        timeout_s: float,
        http_session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(output_format(settings), timeout_s=timeout_s)
        self.settings = settings
        self._session = http_session
        self._owns_session = http_session is None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _stream(self, text: str) -> AsyncGenerator[bytes, None]:
        request = speech_request(self.settings, text)
        # Reads are bounded by the shared per-chunk limit in TtsProvider.synthesize.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s)
        try:
            async with self._http().post(
                request.url, data=request.body, headers=request.headers, timeout=timeout
            ) as response:
                try:
                    if response.status in (401, 403):
                        raise TtsAuthError(
                            f"elevenlabs TTS rejected the API key (HTTP {response.status})"
                        )
                    if response.status != 200:
                        body = await response.content.read(4096)
                        reason = error_message(response.status, body)
                        raise TtsError(f"elevenlabs TTS failed: {reason}")
                    async for chunk in response.content.iter_any():
                        yield chunk
                finally:
                    # An unfinished body (cancellation) must drop the connection, not pool it.
                    if not response.content.at_eof():
                        response.close()
        except aiohttp.ClientError as exc:
            raise TtsError(f"elevenlabs TTS unreachable: {exc}") from None

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None


def create_provider(
    raw: Mapping[str, Any],
    *,
    timeout_s: float,
    http_session: aiohttp.ClientSession | None = None,
) -> ElevenLabsTts:
    """A provider for `tts.providers.elevenlabs`."""
    settings = parse_settings(ElevenLabsTtsSettings, raw, "elevenlabs")
    return ElevenLabsTts(settings, timeout_s=timeout_s, http_session=http_session)
