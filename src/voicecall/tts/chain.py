"""A call's provider chain (SPEC §8.3): the primary provider, then the fallbacks, in order.

A provider that fails before its first audio hands over to the next one. Once audio has been
yielded the chain is committed to that provider: a later failure is raised, never papered over
by another voice repeating the sentence.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Sequence

from voicecall.tts.base import TtsProvider
from voicecall.tts.errors import TtsError

__all__ = ["FallbackCallback", "TtsChain", "TtsChainFailed"]

#: Called with (from, to) provider ids when a fallback provider spoke (the metrics counter
#: `voicecall_tts_fallbacks_total{from,to}`).
FallbackCallback = Callable[[str, str], None]

_log = logging.getLogger("voicecall.tts")


class TtsChainFailed(TtsError):
    """Every provider in the chain failed; the message lists each one's reason."""


class TtsChain:
    """Synthesis with fallback over an ordered list of providers."""

    def __init__(
        self,
        providers: Sequence[TtsProvider],
        *,
        on_fallback: FallbackCallback | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.providers = tuple(providers)
        self._on_fallback = on_fallback
        self._log = logger or _log

    @property
    def provider_ids(self) -> tuple[str, ...]:
        """The chain's order."""
        return tuple(p.provider_id for p in self.providers)

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """µ-law 8 kHz chunks from the first provider that produces audio; close to cancel."""
        if not self.providers:
            raise TtsChainFailed("no telephony TTS provider is configured")
        attempts: list[str] = []
        reasons: list[str] = []
        for provider in self.providers:
            attempts.append(provider.provider_id)
            stream = provider.synthesize(text)
            try:
                first = await anext(stream)
            except TtsError as exc:
                await stream.aclose()
                reasons.append(f"{provider.provider_id}: {exc}")
                self._log.info("telephony TTS %s failed: %s", provider.provider_id, exc)
                continue
            try:
                if len(attempts) > 1:
                    self._fallback_used(attempts)
                yield first
                async for chunk in stream:
                    yield chunk
            finally:
                await stream.aclose()
            return
        raise TtsChainFailed("every telephony TTS provider failed: " + "; ".join(reasons))

    def _fallback_used(self, attempts: list[str]) -> None:
        first, used = attempts[0], attempts[-1]
        self._log.warning(
            "telephony TTS fallback used from=%s to=%s attempts=%s",
            first,
            used,
            " -> ".join(attempts),
        )
        if self._on_fallback is not None:
            try:
                self._on_fallback(first, used)
            except Exception:
                self._log.exception("TTS fallback callback failed")
