"""Mistral Voxtral realtime transcription: JSON session setup, base64 audio, a local turn gate.

Voxtral has no turn detection of its own. A local energy gate on the outgoing audio (SPEC §7.5
values: RMS above 0.035 of full scale for 2 chunks of 20 ms starts speech; `silenceDurationMs`
of quiet stops it) sends `input_audio.flush`; the deltas since the last final become final on
`transcription.segment`, or 500 ms after the flush when no new delta came.
"""

from __future__ import annotations

import base64
import math
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import orjson
from pydantic import AliasChoices, Field

from voicecall.media import VadFramer
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
    "MistralProtocol",
    "MistralSettings",
    "SessionUpdate",
    "TextDelta",
    "TranscriptionSegment",
]

DEFAULT_BASE_URL = "wss://api.mistral.ai"
FINAL_AFTER_FLUSH_S = 0.5
GATE_FRAME_MS = 20

_FLUSH = '{"type":"input_audio.flush"}'
_END = '{"type":"input_audio.end"}'
_ENCODINGS = {"ulaw": "pcm_mulaw", "alaw": "pcm_alaw", "pcm16": "pcm_s16le"}


class MistralSettings(ProviderSettings):
    """`streaming.providers.mistral` (defaults: Voxtral mini realtime, 800 ms delay and silence)."""

    model: str = "voxtral-mini-transcribe-realtime-2602"
    target_streaming_delay_ms: int = Field(
        default=800, ge=0, validation_alias=AliasChoices("targetStreamingDelayMs")
    )
    silence_duration_ms: int = Field(
        default=800,
        gt=0,
        validation_alias=AliasChoices("silenceDurationMs", "endpointingMs", "endpointing"),
    )
    rms_threshold: float = Field(
        default=0.035, gt=0, lt=1, validation_alias=AliasChoices("rmsThreshold")
    )
    start_chunks: int = Field(default=2, ge=1, validation_alias=AliasChoices("startChunks"))


class _AudioFormatModel(WireModel):
    encoding: str
    sample_rate: int


class _SessionConfig(WireModel):
    audio_format: _AudioFormatModel
    target_streaming_delay_ms: int


class SessionUpdate(WireModel):
    """The audio format and streaming delay, sent after `session.created`."""

    type: Literal["session.update"] = "session.update"
    session: _SessionConfig


class TextDelta(WireModel):
    """More text of the audio heard so far."""

    type: Literal["transcription.text.delta"] = "transcription.text.delta"
    text: str = ""


class TranscriptionSegment(WireModel):
    """A settled segment of text."""

    type: Literal["transcription.segment"] = "transcription.segment"
    text: str = ""


class _ErrorBody(WireModel):
    message: Any = None
    code: int | None = None


class ErrorMessage(WireModel):
    """An error; `message` is a string or `{"detail": ...}`."""

    type: Literal["error"] = "error"
    error: _ErrorBody = Field(default_factory=_ErrorBody)

    @property
    def text(self) -> str:
        """A readable message."""
        message = self.error.message
        if isinstance(message, dict):
            message = message.get("detail", message)
        return str(message) if message else "unknown error"


class _TurnGate:
    """Energy gate on outgoing audio: 'started' after loud chunks, 'stopped' after quiet ones."""

    def __init__(self, settings: MistralSettings) -> None:
        encoding = "ulaw" if settings.encoding == "ulaw" else "pcm16"
        if settings.encoding == "alaw" or settings.sample_rate_hz not in (8000, 16000):
            raise ValueError("mistral's turn gate needs ulaw, or pcm at 8000 or 16000 Hz")
        # The media core computes each frame's energy; only the gate's counting is ours.
        self._framer = VadFramer(
            sample_rate_hz=settings.sample_rate_hz, frame_ms=GATE_FRAME_MS, encoding=encoding
        )
        self._frame_bytes = self._framer.frame_bytes
        self._threshold_dbfs = 20.0 * math.log10(settings.rms_threshold)
        self._start_chunks = settings.start_chunks
        self._stop_chunks = max(1, settings.silence_duration_ms // GATE_FRAME_MS)
        self._pending = b""
        self._run = 0
        self.in_speech = False

    def feed(self, audio: bytes) -> list[str]:
        """The 'started'/'stopped' transitions in this audio, in order."""
        data = self._pending + audio if self._pending else audio
        transitions: list[str] = []
        fb = self._frame_bytes
        end = len(data) - len(data) % fb
        for offset in range(0, end, fb):
            self._framer.process(data[offset : offset + fb])
            loud = self._framer.energy_dbfs > self._threshold_dbfs
            self._run = self._run + 1 if loud != self.in_speech else 0
            if self._run >= (self._stop_chunks if self.in_speech else self._start_chunks):
                self.in_speech = not self.in_speech
                self._run = 0
                transitions.append("started" if self.in_speech else "stopped")
        self._pending = data[end:]
        return transitions


class MistralProtocol(SttProtocol):
    """Sans-IO Voxtral realtime client."""

    provider_id: ClassVar[str] = "mistral"

    def __init__(self, settings: MistralSettings) -> None:
        super().__init__(settings.audio_format)
        self.settings = settings
        self._gate = _TurnGate(settings)
        self._text = ""
        self._final_deadline: float | None = None
        self._flushed = False

    def connect_request(self) -> ConnectRequest:
        """`/v1/audio/transcriptions/realtime?model=M`; `Authorization: Bearer <key>`."""
        s = self.settings
        base = (s.base_url or DEFAULT_BASE_URL).rstrip("/")
        query = urlencode({"model": s.model})
        return ConnectRequest(
            f"{base}/v1/audio/transcriptions/realtime?{query}",
            {"Authorization": f"Bearer {s.api_key}"},
        )

    def _opened(self, now_s: float) -> None:
        self._text = ""
        self._final_deadline = None
        self._flushed = False

    def send_audio(self, audio: bytes, now_s: float) -> None:
        """One `input_audio.append`, then a flush if the gate heard the speaker stop."""
        b64 = base64.b64encode(audio).decode("ascii")
        self._send('{"type":"input_audio.append","audio":"' + b64 + '"}')
        for transition in self._gate.feed(audio):
            if transition == "started":
                self._flushed = False
                self._emit(SpeechStarted())
            else:
                self._send(_FLUSH)
                self._flushed = True
                self._final_deadline = now_s + FINAL_AFTER_FLUSH_S

    def _close(self, now_s: float) -> None:
        self._send(_END)

    def tick(self, now_s: float) -> None:
        """Settles the text when a flush got no new delta for 500 ms."""
        if self._final_deadline is not None and now_s >= self._final_deadline:
            self._final()

    def next_deadline(self) -> float | None:
        """When the text after a flush becomes final."""
        return self._final_deadline

    def receive(self, message: str | bytes, now_s: float) -> None:
        """Session setup, deltas, segments, the end of the session and errors."""
        data = orjson.loads(message)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "session.created":
            self._send(self._session_update().model_dump_json())
        elif kind == "session.updated":
            self.ready = True
            self._emit(SessionReady())
        elif kind == "transcription.text.delta":
            delta = TextDelta.model_validate(data).text
            self._text = (self._text + delta)[-MAX_TRANSCRIPT_CHARS:]
            if self._flushed:
                self._final_deadline = now_s + FINAL_AFTER_FLUSH_S
            if self._text.strip():
                self._emit(PartialTranscript(self._text.strip()))
        elif kind == "transcription.segment":
            segment = TranscriptionSegment.model_validate(data).text
            if not self._text.strip():
                self._text = segment
            self._final()
        elif kind == "transcription.done":
            self._final()
            self.finished = True
        elif kind == "error":
            error = ErrorMessage.model_validate(data)
            fatal = not self.ready or error.error.code in (401, 403)
            self._emit(TranscriptionError(f"mistral: {error.text}", fatal=fatal))

    def _session_update(self) -> SessionUpdate:
        s = self.settings
        return SessionUpdate(
            session=_SessionConfig(
                audio_format=_AudioFormatModel(
                    encoding=_ENCODINGS[s.encoding], sample_rate=s.sample_rate_hz
                ),
                target_streaming_delay_ms=s.target_streaming_delay_ms,
            )
        )

    def _final(self) -> None:
        text = self._text.strip()
        self._text = ""
        self._final_deadline = None
        self._flushed = False
        if text:
            self._emit(FinalTranscript(text))
