"""OpenAI Realtime transcription sessions (GA): `session.update`, base64 appends, server VAD."""

from __future__ import annotations

import base64
from typing import Any, ClassVar, Literal

import orjson
from pydantic import AliasChoices, Field

from voicecall.stt.events import (
    FinalTranscript,
    PartialTranscript,
    SessionReady,
    SpeechStarted,
    TranscriptionError,
)
from voicecall.stt.protocol import (
    MAX_TRANSCRIPT_CHARS,
    ConnectRequest,
    ProviderSettings,
    SttProtocol,
    WireModel,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "ErrorMessage",
    "OpenAIProtocol",
    "OpenAISettings",
    "SessionUpdate",
    "TranscriptionCompleted",
    "TranscriptionDelta",
]

DEFAULT_BASE_URL = "wss://api.openai.com/v1"
_COMMIT = '{"type":"input_audio_buffer.commit"}'


class OpenAISettings(ProviderSettings):
    """`streaming.providers.openai` (defaults: gpt-4o-transcribe, server VAD 0.5 / 800 ms)."""

    model: str = Field(default="gpt-4o-transcribe", validation_alias=AliasChoices("model"))
    language: str | None = None
    prompt: str | None = None
    vad_threshold: float = Field(
        default=0.5, ge=0, le=1, validation_alias=AliasChoices("vadThreshold")
    )
    silence_duration_ms: int = Field(
        default=800,
        gt=0,
        validation_alias=AliasChoices("silenceDurationMs", "endpointingMs", "endpointing"),
    )
    prefix_padding_ms: int = Field(
        default=300, ge=0, validation_alias=AliasChoices("prefixPaddingMs")
    )


class _Format(WireModel):
    type: Literal["audio/pcmu", "audio/pcma", "audio/pcm"]
    rate: int | None = None


class _Transcription(WireModel):
    model: str
    language: str | None = None
    prompt: str | None = None


class _TurnDetection(WireModel):
    type: Literal["server_vad"] = "server_vad"
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int


class _Input(WireModel):
    format: _Format
    transcription: _Transcription
    turn_detection: _TurnDetection


class _Audio(WireModel):
    input: _Input


class _Session(WireModel):
    type: Literal["transcription"] = "transcription"
    audio: _Audio


class SessionUpdate(WireModel):
    """The transcription session's configuration."""

    type: Literal["session.update"] = "session.update"
    session: _Session


class TranscriptionDelta(WireModel):
    """More text of one item's transcript."""

    type: Literal["conversation.item.input_audio_transcription.delta"]
    item_id: str = ""
    delta: str = ""


class TranscriptionCompleted(WireModel):
    """One item's full transcript."""

    type: Literal["conversation.item.input_audio_transcription.completed"]
    item_id: str = ""
    transcript: str = ""


class _ErrorBody(WireModel):
    type: str | None = None
    code: str | None = None
    message: str | None = None


class ErrorMessage(WireModel):
    """`error`, or an item's `...transcription.failed`."""

    type: str
    item_id: str | None = None
    error: _ErrorBody = Field(default_factory=_ErrorBody)

    @property
    def text(self) -> str:
        """A readable message."""
        return self.error.message or self.error.code or self.error.type or "unknown error"


class OpenAIProtocol(SttProtocol):
    """Sans-IO OpenAI Realtime transcription client."""

    provider_id: ClassVar[str] = "openai"

    def __init__(self, settings: OpenAISettings) -> None:
        super().__init__(settings.audio_format)
        if settings.encoding == "pcm16" and settings.sample_rate_hz != 24000:
            raise ValueError("openai takes pcm audio at 24000 Hz only")
        self.settings = settings
        self._partials: dict[str, str] = {}
        self._uncommitted = False
        self._commit_sent = False

    def connect_request(self) -> ConnectRequest:
        """`{baseUrl}/realtime?intent=transcription`, `Authorization: Bearer <key>`."""
        base = (self.settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        return ConnectRequest(
            f"{base}/realtime?intent=transcription",
            {"Authorization": f"Bearer {self.settings.api_key}"},
        )

    def session_update(self) -> SessionUpdate:
        """The `session.update` this session sends first."""
        s = self.settings
        fmt = {
            "ulaw": _Format(type="audio/pcmu"),
            "alaw": _Format(type="audio/pcma"),
            "pcm16": _Format(type="audio/pcm", rate=24000),
        }[s.encoding]
        return SessionUpdate(
            session=_Session(
                audio=_Audio(
                    input=_Input(
                        format=fmt,
                        transcription=_Transcription(
                            model=s.model, language=s.language, prompt=s.prompt
                        ),
                        turn_detection=_TurnDetection(
                            threshold=s.vad_threshold,
                            prefix_padding_ms=s.prefix_padding_ms,
                            silence_duration_ms=s.silence_duration_ms,
                        ),
                    )
                )
            )
        )

    def _opened(self, now_s: float) -> None:
        self._partials.clear()
        self._uncommitted = False
        self._commit_sent = False
        self._send(self.session_update().model_dump_json(exclude_none=True))

    def send_audio(self, audio: bytes, now_s: float) -> None:
        """One `input_audio_buffer.append` (template-built: this is the hot path)."""
        b64 = base64.b64encode(audio).decode("ascii")
        self._send('{"type":"input_audio_buffer.append","audio":"' + b64 + '"}')
        self._uncommitted = True

    def _close(self, now_s: float) -> None:
        if self._uncommitted:
            self._send(_COMMIT)
            self._commit_sent = True
        self._check_finished()

    def receive(self, message: str | bytes, now_s: float) -> None:
        """Session, VAD, transcript and error events."""
        data: Any = orjson.loads(message)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "session.updated":
            if not self.ready:
                self.ready = True
                self._emit(SessionReady())
        elif kind == "input_audio_buffer.speech_started":
            self._partials.setdefault(str(data.get("item_id") or ""), "")
            self._emit(SpeechStarted())
        elif kind == "input_audio_buffer.committed":
            self._uncommitted = False
            self._commit_sent = False
            self._partials.setdefault(str(data.get("item_id") or ""), "")
        elif kind == "conversation.item.input_audio_transcription.delta":
            delta = TranscriptionDelta.model_validate(data)
            text = (self._partials.get(delta.item_id, "") + delta.delta)[-MAX_TRANSCRIPT_CHARS:]
            self._partials[delta.item_id] = text
            if text.strip():
                self._emit(PartialTranscript(text.strip()))
        elif kind == "conversation.item.input_audio_transcription.completed":
            done = TranscriptionCompleted.model_validate(data)
            self._partials.pop(done.item_id, None)
            if done.transcript.strip():
                self._emit(FinalTranscript(done.transcript.strip()[-MAX_TRANSCRIPT_CHARS:]))
        elif kind in ("conversation.item.input_audio_transcription.failed", "error"):
            error = ErrorMessage.model_validate(data)
            if error.item_id is not None:
                self._partials.pop(error.item_id, None)
            if self.closing and kind == "error":
                self._commit_sent = False  # e.g. a commit of too little audio: nothing to wait for
            else:
                fatal = kind == "error" and not self.ready  # the session setup was refused
                self._emit(TranscriptionError(f"openai: {error.text}", fatal=fatal))
        if self.closing:
            self._check_finished()

    def _check_finished(self) -> None:
        # Done once the closing commit (if any) was accepted and every heard item has its text.
        if not self._commit_sent and not self._partials:
            self.finished = True
