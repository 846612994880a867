"""Barge-in (SPEC §2.8): caller speech while the bot speaks stops the bot's audio at once.

Caller speech is a VAD speech-start from the media core or the STT provider's speech-start,
partial or final transcript, each delivered as one call of :meth:`BargeIn.caller_spoke`. It
increments :attr:`BargeIn.generation` (a reply started under an older generation is stale),
calls every ``on_barge_in`` hook (the auto-responder cancels its pending reply there) and, if
anything is playing or queued, clears the playback. Suppressed only while an outbound call's
initial greeting is playing; always on for inbound calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from voicecall.streaming.playback import Playback

__all__ = ["BargeIn", "SpeechSource"]

log = logging.getLogger("voicecall.bargein")

SpeechSource = str
"""Who heard the caller: ``vad``, ``stt-speech-started``, ``stt-partial`` or ``stt-final``."""


class BargeIn:
    """The barge-in policy of one media stream."""

    def __init__(self, playback: Playback, *, outbound: bool, label: str = "") -> None:
        self.playback = playback
        self.outbound = outbound
        self.label = label
        self.generation = 0
        self.interruptions = 0  # barge-ins that actually cut the bot off
        self.on_barge_in: list[Callable[[], None]] = []

    @property
    def suppressed(self) -> bool:
        """Whether caller speech is ignored now (an outbound call's greeting is playing)."""
        return self.outbound and self.playback.greeting_playing

    def caller_spoke(self, source: SpeechSource) -> bool:
        """The caller made a sound; True when that cut the bot off."""
        if self.suppressed:
            return False
        self.generation += 1
        for hook in self.on_barge_in:
            hook()
        if not self.playback.speaking:
            return False
        settled = self.playback.clear()
        self.interruptions += 1
        log.info("barge-in on %s (%s): %d playback items cleared", self.label, source, settled)
        return True
