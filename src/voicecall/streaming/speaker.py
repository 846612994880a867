"""The bot's words on a media stream: TTS chain into playback, with timings and heard text.

Once a stream is registered every utterance goes this way (SPEC §8.2): the call's provider
chain synthesizes it and :class:`~voicecall.streaming.playback.Playback` paces it out. The
outcome says whether it played, how much the caller heard before a barge-in, and when the
first synthesized audio and the first frame to the carrier happened (SPEC §10.2). When every
provider fails before any audio, the caller hears a short apology instead of silence: spoken
by the chain if a provider manages the short text, else by the ``local`` provider when it is
installed, else the failure is only logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from voicecall.streaming.playback import Playback, PlaybackError, PlaybackItem, PlaybackStatus
from voicecall.tts import TtsError, TtsProvider, TtsUnavailable

__all__ = [
    "APOLOGY",
    "UNAVAILABLE",
    "ChainSource",
    "Spoken",
    "StreamSpeaker",
    "Synthesizer",
    "Utterance",
]

log = logging.getLogger("voicecall.speaker")

APOLOGY = "Sorry, I'm having trouble speaking right now. Please go on."
UNAVAILABLE = "telephony TTS unavailable while a media stream is active"
_TTS_FAILURES = ("TTS synthesis failed", "TTS synthesis timed out", "TTS returned no audio")


class Synthesizer(Protocol):
    """Text to µ-law 8 kHz chunks (a ``TtsChain`` or a ``TtsProvider``)."""

    def synthesize(self, text: str) -> AsyncGenerator[bytes, None]: ...


ChainSource = Callable[[str | None], Synthesizer]
"""``source(number)``: the provider chain of a call's number; raises ``TtsUnavailable``."""


@dataclass(frozen=True, slots=True)
class Utterance:
    """An utterance queued on a stream's playback, not yet settled."""

    playback: Playback
    chain: Synthesizer
    item: PlaybackItem
    timings: dict[str, int]  # firstAudioAt once synthesis yields audio


@dataclass(frozen=True, slots=True)
class Spoken:
    """What became of one utterance on a stream."""

    error: str | None = None
    heard_text: str | None = None  # set when a barge-in or a failure cut it short
    timings: dict[str, int] = field(default_factory=dict)  # firstAudioAt, firstFrameAt (ms)
    apology: str | None = None  # what the caller heard of the apology that replaced it

    def text_heard(self, text: str) -> str:
        """What the caller heard of an utterance saying ``text``."""
        if self.heard_text is not None:
            return self.heard_text
        return "" if self.error is not None else text


def _local_provider(env: Mapping[str, str]) -> TtsProvider | None:
    try:
        from voicecall.tts.local.client import create_provider

        return create_provider({}, timeout_s=10.0, path=env.get("PATH", os.defpath))
    except (TtsError, ImportError, ValueError) as exc:
        log.info("no local TTS for apologies: %s", exc)
        return None


class StreamSpeaker:
    """Speaks on media streams through a TTS chain source (one per gateway run)."""

    def __init__(
        self,
        chains: ChainSource,
        *,
        clock_ms: Callable[[], int],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._chains = chains
        self._clock_ms = clock_ms
        self._env = dict(os.environ if env is None else env)
        self._local: TtsProvider | None = None
        self._local_tried = False

    async def speak(
        self, playback: Playback, text: str, *, number: str | None = None, greeting: bool = False
    ) -> Spoken:
        """Play ``text`` and wait until it has played, was cut off, or failed."""
        started = self.start(playback, text, number=number, greeting=greeting)
        if isinstance(started, Spoken):
            return started
        return await self.settle(started)

    def start(
        self, playback: Playback, text: str, *, number: str | None = None, greeting: bool = False
    ) -> Utterance | Spoken:
        """Queue ``text`` for synthesis and playback now; a :class:`Spoken` error if it cannot."""
        try:
            chain = self._chains(number)
        except TtsUnavailable as exc:
            log.warning("%s: %s", UNAVAILABLE, exc)
            return Spoken(error=UNAVAILABLE)
        timings: dict[str, int] = {}
        # Synthesis starts when playback first reads the source, so a refused item holds nothing.
        source = self._stamped(chain, text, timings)
        try:
            item = playback.enqueue(source, text, greeting=greeting)
        except PlaybackError as exc:
            return Spoken(error=str(exc))
        return Utterance(playback, chain, item, timings)

    async def settle(self, utterance: Utterance, *, apologize: bool = True) -> Spoken:
        """Wait for a started utterance; the apology follows a TTS failure before any audio."""
        playback, timings = utterance.playback, utterance.timings
        result = await utterance.item.wait()
        if result.first_frame_at is not None:
            ago_ms = round((playback.now() - result.first_frame_at) * 1000)
            first_frame = self._clock_ms() - ago_ms
            # The frame follows its audio; rounding between the two clocks must not reorder them.
            timings["firstFrameAt"] = max(first_frame, timings.get("firstAudioAt", first_frame))
        else:
            timings.pop("firstAudioAt", None)
        if result.status in (PlaybackStatus.PLAYED, PlaybackStatus.MARK_TIMEOUT):
            return Spoken(timings=timings)
        if result.status is PlaybackStatus.FAILED or result.error is not None:
            error = result.error or "playback failed"
            apology: str | None = None
            if apologize and result.frames_sent == 0 and error.startswith(_TTS_FAILURES):
                apology = await self._apologize(playback, utterance.chain)
            return Spoken(
                error=error, heard_text=result.heard_text, timings=timings, apology=apology
            )
        return Spoken(heard_text=result.heard_text, timings=timings)  # barge-in

    async def aclose(self) -> None:
        """Closes the apology provider, if one was made."""
        if self._local is not None:
            await self._local.aclose()

    async def _stamped(
        self, chain: Synthesizer, text: str, timings: dict[str, int]
    ) -> AsyncGenerator[bytes, None]:
        chunks = chain.synthesize(text)
        try:
            async for chunk in chunks:
                if chunk and "firstAudioAt" not in timings:
                    timings["firstAudioAt"] = self._clock_ms()
                yield chunk
        finally:
            await chunks.aclose()

    async def _apologize(self, playback: Playback, chain: Synthesizer) -> str | None:
        """Play the apology; what the caller heard of it (None: it could not be played)."""
        log.warning("telephony TTS failed; the caller hears an apology instead")
        try:
            item = playback.enqueue(self._apology_audio(chain), APOLOGY)
        except PlaybackError as exc:
            log.warning("could not queue the apology: %s", exc)
            return None
        result = await item.wait()
        if result.status in (PlaybackStatus.PLAYED, PlaybackStatus.MARK_TIMEOUT):
            return APOLOGY
        return result.heard_text or None

    async def _apology_audio(self, chain: Synthesizer) -> AsyncIterator[bytes]:
        synthesizers: list[Synthesizer] = [chain]
        local = self._local_synthesizer()
        if local is not None:
            synthesizers.append(local)
        reasons: list[str] = []
        for synthesizer in synthesizers:
            stream = synthesizer.synthesize(APOLOGY)
            try:
                first = await anext(stream)
            except (TtsError, StopAsyncIteration) as exc:
                await stream.aclose()
                reasons.append(str(exc) or type(exc).__name__)
                continue
            try:
                yield first
                async for chunk in stream:
                    yield chunk
            finally:
                await stream.aclose()
            return
        log.error("the apology could not be spoken either: %s", "; ".join(reasons))
        raise TtsError("no TTS provider could speak the apology")

    def _local_synthesizer(self) -> Synthesizer | None:
        if not self._local_tried:
            self._local_tried = True
            self._local = _local_provider(self._env)
        return self._local
