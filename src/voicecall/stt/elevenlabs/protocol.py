"""ElevenLabs realtime speech-to-text (Scribe): query-string setup, base64 audio chunks in JSON."""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import orjson
from pydantic import AliasChoices, Field

from voicecall.stt.events import (
    FinalTranscript,
    PartialTranscript,
    SessionReady,
    SpeechStarted,
    TranscriptionError,
)
from voicecall.stt.protocol import ConnectRequest, ProviderSettings, SttProtocol, WireModel

__all__ = [
    "DEFAULT_BASE_URL",
    "CommittedTranscript",
    "ElevenLabsProtocol",
    "ElevenLabsSettings",
    "InputAudioChunk",
    "PartialTranscriptMessage",
    "SessionStarted",
]

DEFAULT_BASE_URL = "wss://api.elevenlabs.io"

# Error message types that no retry can fix; the others are reported and the session goes on.
FATAL_ERRORS = frozenset({"auth_error", "quota_exceeded", "unaccepted_terms_error"})
ERROR_TYPES = FATAL_ERRORS | {
    "error",
    "commit_throttled",
    "transcriber_error",
    "rate_limited",
    "input_error",
    "queue_overflow",
    "resource_exhausted",
    "session_time_limit_exceeded",
    "chunk_size_exceeded",
    "insufficient_audio_activity",
}


class ElevenLabsSettings(ProviderSettings):
    """`streaming.providers.elevenlabs` (defaults: scribe_v2_realtime, ulaw_8000, VAD commits)."""

    model: str = Field(
        default="scribe_v2_realtime", validation_alias=AliasChoices("modelId", "model")
    )
    language: str | None = Field(
        default=None, validation_alias=AliasChoices("languageCode", "language")
    )
    commit_strategy: Literal["vad", "manual"] = Field(
        default="vad", validation_alias=AliasChoices("commitStrategy", "commit_strategy")
    )
    silence_duration_ms: int | None = Field(
        default=None,
        ge=300,
        le=3000,
        validation_alias=AliasChoices("silenceDurationMs", "endpointingMs", "endpointing"),
    )
    vad_threshold: float | None = Field(
        default=None, ge=0.1, le=0.9, validation_alias=AliasChoices("vadThreshold")
    )
    min_speech_duration_ms: int | None = Field(
        default=None, validation_alias=AliasChoices("minSpeechDurationMs")
    )
    min_silence_duration_ms: int | None = Field(
        default=None, validation_alias=AliasChoices("minSilenceDurationMs")
    )

    @property
    def audio_format_name(self) -> str:
        """The `audio_format` query value (`ulaw_8000` or `pcm_<rate>`)."""
        prefix = "ulaw" if self.encoding == "ulaw" else "pcm"
        return f"{prefix}_{self.sample_rate_hz}"


class InputAudioChunk(WireModel):
    """One chunk of audio; an empty chunk with `commit` true asks for the final text."""

    message_type: Literal["input_audio_chunk"] = "input_audio_chunk"
    audio_base_64: str
    commit: bool = False
    sample_rate: int


class SessionStarted(WireModel):
    """The session is ready for audio."""

    message_type: Literal["session_started"] = "session_started"
    session_id: str | None = None


class PartialTranscriptMessage(WireModel):
    """The text of the utterance in progress."""

    message_type: Literal["partial_transcript"] = "partial_transcript"
    text: str = ""


class CommittedTranscript(WireModel):
    """The settled text of a committed segment (also `..._with_timestamps`)."""

    message_type: str = "committed_transcript"
    text: str = ""


class ErrorMessage(WireModel):
    """Any of the error message types."""

    message_type: str
    error: str | None = None
    message: str | None = None


class ElevenLabsProtocol(SttProtocol):
    """Sans-IO ElevenLabs realtime STT client."""

    provider_id: ClassVar[str] = "elevenlabs"

    def __init__(self, settings: ElevenLabsSettings) -> None:
        super().__init__(settings.audio_format)
        if settings.encoding == "alaw":
            raise ValueError("elevenlabs takes ulaw or pcm audio, not alaw")
        self.settings = settings
        self._prefix = b'{"message_type":"input_audio_chunk","audio_base_64":"'
        self._suffix = f'","commit":false,"sample_rate":{settings.sample_rate_hz}}}'.encode()
        self._in_utterance = False
        self._commit_sent = False

    def connect_request(self) -> ConnectRequest:
        """`/v1/speech-to-text/realtime` with the setup in the query; header `xi-api-key`."""
        s = self.settings
        query: dict[str, Any] = {
            "model_id": s.model,
            "audio_format": s.audio_format_name,
            "commit_strategy": s.commit_strategy,
            "include_timestamps": "false",
            "include_language_detection": "false",
        }
        optional = {
            "language_code": s.language,
            "vad_silence_threshold_secs": (
                s.silence_duration_ms / 1000 if s.silence_duration_ms is not None else None
            ),
            "vad_threshold": s.vad_threshold,
            "min_speech_duration_ms": s.min_speech_duration_ms,
            "min_silence_duration_ms": s.min_silence_duration_ms,
        }
        query.update({k: v for k, v in optional.items() if v is not None})
        base = (s.base_url or DEFAULT_BASE_URL).rstrip("/")
        return ConnectRequest(
            f"{base}/v1/speech-to-text/realtime?{urlencode(query)}", {"xi-api-key": s.api_key}
        )

    def _opened(self, now_s: float) -> None:
        self._in_utterance = False
        self._commit_sent = False

    def send_audio(self, audio: bytes, now_s: float) -> None:
        """One `input_audio_chunk` (the JSON is built from a template: this is the hot path)."""
        self._send((self._prefix + base64.b64encode(audio) + self._suffix).decode("ascii"))

    def _close(self, now_s: float) -> None:
        chunk = InputAudioChunk(
            audio_base_64="", commit=True, sample_rate=self.settings.sample_rate_hz
        )
        self._send(chunk.model_dump_json())
        self._commit_sent = True
        if not self._in_utterance:
            self.finished = True  # nothing was heard since the last commit: no text to wait for

    def receive(self, message: str | bytes, now_s: float) -> None:
        """Session start, partial and committed transcripts, and errors."""
        data = orjson.loads(message)
        kind = data.get("message_type") if isinstance(data, dict) else None
        if kind == "session_started":
            self.ready = True
            self._emit(SessionReady())
        elif kind == "partial_transcript":
            text = PartialTranscriptMessage.model_validate(data).text.strip()
            if not text:
                return
            if not self._in_utterance:  # the first partial after a commit starts speech
                self._in_utterance = True
                self._emit(SpeechStarted())
            self._emit(PartialTranscript(text))
        elif kind in ("committed_transcript", "committed_transcript_with_timestamps"):
            text = CommittedTranscript.model_validate(data).text.strip()
            self._in_utterance = False
            if text:
                self._emit(FinalTranscript(text))
            if self._commit_sent:
                self.finished = True
        elif kind in ERROR_TYPES:
            error = ErrorMessage.model_validate(data)
            detail = error.error or error.message or kind
            fatal = kind in FATAL_ERRORS or not self.ready
            self._emit(TranscriptionError(f"elevenlabs {kind}: {detail}", fatal=fatal))
