"""Streaming transcription: one session per call behind one interface, five providers (SPEC §6)."""

from __future__ import annotations

from voicecall.stt.base import EventCallback, ReconnectPolicy, SttAuthError, SttSession
from voicecall.stt.events import (
    FinalTranscript,
    PartialTranscript,
    SessionReady,
    SpeechStarted,
    SttEvent,
    TranscriptionError,
)
from voicecall.stt.registry import (
    STT_PROVIDERS,
    SttUnavailable,
    create_stt_session,
    create_stt_session_or_warn,
    select_stt_provider,
    unavailable_message,
)

__all__ = [
    "STT_PROVIDERS",
    "EventCallback",
    "FinalTranscript",
    "PartialTranscript",
    "ReconnectPolicy",
    "SessionReady",
    "SpeechStarted",
    "SttAuthError",
    "SttEvent",
    "SttSession",
    "SttUnavailable",
    "TranscriptionError",
    "create_stt_session",
    "create_stt_session_or_warn",
    "select_stt_provider",
    "unavailable_message",
]
