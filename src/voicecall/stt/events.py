"""What a transcription session reports to the call: ready, speech, transcripts, errors."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FinalTranscript",
    "PartialTranscript",
    "SessionReady",
    "SpeechStarted",
    "SttEvent",
    "TranscriptionError",
]


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The provider accepted the session; audio now flows (sent again after a reconnect)."""

    reconnected: bool = False


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking (provider VAD, or a local gate where the provider has none)."""


@dataclass(frozen=True, slots=True)
class PartialTranscript:
    """The current, still revisable text of the utterance in progress."""

    text: str


@dataclass(frozen=True, slots=True)
class FinalTranscript:
    """The settled text of one utterance."""

    text: str


@dataclass(frozen=True, slots=True)
class TranscriptionError:
    """The provider reported a problem; ``fatal`` means the session has ended for good."""

    message: str
    fatal: bool = False


SttEvent = SessionReady | SpeechStarted | PartialTranscript | FinalTranscript | TranscriptionError
