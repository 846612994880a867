"""The synthesis interface every TTS provider offers: text in, streamed µ-law 8 kHz out.

Usage::

    stream = provider.synthesize("Hello there.")
    async with contextlib.aclosing(stream):
        async for ulaw_8k in stream:      # chunks as the provider streams them
            play(ulaw_8k)
    # leaving the block early (barge-in) closes the provider's request

A provider only says how to stream its raw response (:meth:`TtsProvider._stream`) and in which
format (:attr:`TtsProvider.output_format`); the conversion to µ-law through the media core, the
time limit and the empty-audio check are shared here.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from typing import ClassVar

from voicecall.tts.audio import OutputFormat, UlawConverter
from voicecall.tts.errors import TtsError, TtsTimeout

__all__ = ["TtsProvider"]


class TtsProvider(ABC):
    """One configured provider; safe to share between calls (it holds no per-call state)."""

    provider_id: ClassVar[str] = ""

    def __init__(self, output_format: OutputFormat, *, timeout_s: float) -> None:
        self.output_format = output_format
        #: The longest wait for the first audio, and between two chunks of it (`tts.timeoutMs`).
        self.timeout_s = timeout_s

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """µ-law 8 kHz chunks of `text` as they arrive; close the iterator to stop the request.

        Raises :class:`TtsError` (or a subclass) when the provider fails, sends nothing within
        `timeout_s`, or sends no audio at all.
        """
        converter = UlawConverter(self.output_format)
        raw = self._stream(text)
        produced = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self.timeout_s):
                        chunk = await anext(raw)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    waited_ms = round(self.timeout_s * 1000)
                    what = "more audio" if produced else "audio"
                    raise TtsTimeout(
                        f"{self.provider_id} TTS sent no {what} within {waited_ms} ms"
                    ) from None
                ulaw = converter.feed(chunk)
                if ulaw:
                    produced = True
                    yield ulaw
            tail = converter.flush()
            if tail:
                produced = True
                yield tail
            if not produced:
                raise TtsError(f"{self.provider_id} TTS returned no audio")
        finally:
            await raw.aclose()

    @abstractmethod
    def _stream(self, text: str) -> AsyncGenerator[bytes, None]:
        """The provider's raw response bytes, as they arrive (an async generator).

        Closing it must stop the request. Failures raise :class:`TtsError` subclasses.
        """

    async def aclose(self) -> None:  # noqa: B027 - most providers own nothing to close
        """Releases what the provider owns (its HTTP client); shared sessions stay open."""
