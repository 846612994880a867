"""An automatic reply spoken sentence by sentence while the model still writes it (SPEC §8.4).

Fed the runner's text deltas, :class:`SentenceReply` queues each finished sentence of the
spoken reply as its own playback item at once, so the first sentence is synthesized and heard
while the model generates the next. At most ``AHEAD`` of its sentences are unsettled on the
playback at a time (the engine synthesizes only the playing item and the next one anyway); the
rest wait in order and are queued as earlier ones settle. :meth:`SentenceReply.cancel` stops
it: nothing further is queued or synthesized. :meth:`SentenceReply.outcome` reports the reply
as one utterance: timings of the first sentence, and what the caller heard when cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from voicecall.agent.sentences import SpokenSentences
from voicecall.streaming.playback import Playback
from voicecall.streaming.speaker import Spoken, StreamSpeaker, Utterance

__all__ = ["AHEAD", "SentenceReply"]

AHEAD = 3  # sentences of one reply queued on the playback at once


class SentenceReply:
    """The streamed reply of one caller turn on one media stream."""

    def __init__(
        self, speaker: StreamSpeaker, playback: Playback, *, number: str | None = None
    ) -> None:
        self._speaker = speaker
        self._playback = playback
        self._number = number
        self._sentences = SpokenSentences()
        self._said: list[str] = []  # every sentence handed to playback (or waiting for a slot)
        self._waiting: deque[str] = deque()
        self._started: list[Utterance] = []
        self._refused: Spoken | None = None  # why a sentence could not be queued
        self._drain: asyncio.Task[None] | None = None
        self._cancelled = False

    @property
    def started(self) -> bool:
        """Whether any sentence has been queued (the reply is being spoken this way)."""
        return bool(self._said)

    @property
    def text(self) -> str:
        """The reply as spoken: its sentences joined by single spaces."""
        return " ".join(self._said)

    def feed(self, delta: str) -> None:
        """A text delta from the runner: queue the sentences it completed."""
        if not self._cancelled:
            self._say(self._sentences.feed(delta))

    def finish(self) -> None:
        """The run completed: queue the rest, if the reply is being spoken sentence by sentence."""
        if not self._cancelled and self.started:
            self._say(self._sentences.finish())

    def cancel(self) -> None:
        """Stop: no further sentence is queued or synthesized (queued ones are the caller's)."""
        self._cancelled = True
        self._waiting.clear()
        if self._drain is not None:
            self._drain.cancel()

    async def outcome(self) -> Spoken:
        """Wait for every queued sentence; the reply's result as one utterance."""
        if self._drain is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        heard: list[str] = []
        timings: dict[str, int] = {}
        error: str | None = self._refused.error if self._refused else None
        apology: str | None = None
        cut = False
        for index, utterance in enumerate(self._started):
            spoken = await self._speaker.settle(utterance, apologize=error is None)
            if index == 0:
                timings = spoken.timings
            apology = apology or spoken.apology
            if cut:
                continue
            if spoken.error is not None:
                error = error or spoken.error
                heard.append(spoken.heard_text or "")
                cut = True
            elif spoken.heard_text is not None:
                heard.append(spoken.heard_text)
                cut = True
            else:
                heard.append(utterance.item.text)
        heard_text = " ".join(part for part in heard if part)
        if error is None and heard_text == self.text:
            return Spoken(timings=timings)
        return Spoken(error=error, heard_text=heard_text, timings=timings, apology=apology)

    def _say(self, sentences: list[str]) -> None:
        self._said += sentences
        self._waiting.extend(sentences)
        self._queue_waiting()

    def _queue_waiting(self) -> None:
        self._queue_fitting()
        if self._waiting and (self._drain is None or self._drain.done()):
            self._drain = asyncio.ensure_future(self._drain_waiting())

    def _queue_fitting(self) -> None:
        while self._waiting and self._unsettled() < AHEAD and not self._cancelled:
            sentence = self._waiting.popleft()
            started = self._speaker.start(self._playback, sentence, number=self._number)
            if isinstance(started, Spoken):
                self._refused = started
                self._cancelled = True
                self._waiting.clear()
                return
            self._started.append(started)

    def _unsettled(self) -> int:
        return sum(1 for u in self._started if not u.item.done)

    async def _drain_waiting(self) -> None:
        while self._waiting and not self._cancelled:
            oldest = next(u for u in self._started if not u.item.done)
            await oldest.item.wait()
            self._queue_fitting()
