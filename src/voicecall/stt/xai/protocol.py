"""xAI streaming speech-to-text (`/v1/stt`): query-string setup, binary audio, JSON results."""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import orjson
from pydantic import AliasChoices, Field

from voicecall.stt.events import (
    FinalTranscript,
    SessionReady,
    SpeechStarted,
    TranscriptionError,
)
from voicecall.stt.protocol import (
    ConnectRequest,
    ProviderSettings,
    SegmentAccumulator,
    SttProtocol,
    WireModel,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "ErrorMessage",
    "TranscriptCreated",
    "TranscriptDone",
    "TranscriptPartial",
    "XaiProtocol",
    "XaiSettings",
]

DEFAULT_BASE_URL = "wss://api.x.ai"
_AUDIO_DONE = '{"type":"audio.done"}'
_ENCODINGS = {"ulaw": "mulaw", "alaw": "alaw", "pcm16": "pcm"}


class XaiSettings(ProviderSettings):
    """`streaming.providers.xai` (defaults: µ-law 8 kHz, interim results, 800 ms endpointing)."""

    language: str | None = None
    interim_results: bool = Field(
        default=True, validation_alias=AliasChoices("interimResults", "interim_results")
    )
    endpointing_ms: int = Field(
        default=800,
        ge=0,
        le=5000,
        validation_alias=AliasChoices("endpointingMs", "endpointing", "silenceDurationMs"),
    )


class TranscriptCreated(WireModel):
    """The session is ready for audio."""

    type: Literal["transcript.created"] = "transcript.created"


class TranscriptPartial(WireModel):
    """A result with Deepgram semantics (`is_final`, `speech_final`)."""

    type: Literal["transcript.partial"] = "transcript.partial"
    text: str = ""
    is_final: bool = False
    speech_final: bool = False


class TranscriptDone(WireModel):
    """The answer to `audio.done`; the server closes after it."""

    type: Literal["transcript.done"] = "transcript.done"
    text: str = ""


class ErrorMessage(WireModel):
    """A server-side error."""

    type: Literal["error"] = "error"
    message: str = "unknown error"


_MESSAGES: dict[str, type[WireModel]] = {
    "transcript.created": TranscriptCreated,
    "transcript.partial": TranscriptPartial,
    "transcript.done": TranscriptDone,
    "error": ErrorMessage,
}


class XaiProtocol(SttProtocol):
    """Sans-IO xAI STT client."""

    provider_id: ClassVar[str] = "xai"

    def __init__(self, settings: XaiSettings) -> None:
        super().__init__(settings.audio_format)
        self.settings = settings
        self._results = SegmentAccumulator()
        self._in_utterance = False

    def connect_request(self) -> ConnectRequest:
        """`/v1/stt` with the setup in the query; `Authorization: Bearer <key>`."""
        s = self.settings
        query: dict[str, Any] = {
            "sample_rate": s.sample_rate_hz,
            "encoding": _ENCODINGS[s.encoding],
            "interim_results": "true" if s.interim_results else "false",
            "endpointing": s.endpointing_ms,
        }
        if s.language:
            query["language"] = s.language
        base = (s.base_url or DEFAULT_BASE_URL).rstrip("/")
        return ConnectRequest(
            f"{base}/v1/stt?{urlencode(query)}", {"Authorization": f"Bearer {s.api_key}"}
        )

    def send_audio(self, audio: bytes, now_s: float) -> None:
        """Audio goes out as a binary frame, unchanged."""
        self._send(audio)

    def _close(self, now_s: float) -> None:
        self._send(_AUDIO_DONE)

    def receive(self, message: str | bytes, now_s: float) -> None:
        """Ready, results, the closing transcript and errors."""
        data = orjson.loads(message)
        model = _MESSAGES.get(str(data.get("type"))) if isinstance(data, dict) else None
        if model is None:
            return
        parsed = model.model_validate(data)
        if isinstance(parsed, TranscriptCreated):
            self.ready = True
            self._emit(SessionReady())
        elif isinstance(parsed, TranscriptPartial):
            self._on_partial(parsed)
        elif isinstance(parsed, TranscriptDone):
            # Read here as the text of the audio not finalized yet (sources are second-hand);
            # with nothing pending it is ignored, so an earlier final is never repeated.
            if self._results.pending:
                final = self._results.endpoint(include_interim=True)
                text = parsed.text.strip() or (final.text if final else "")
                if text:
                    self._emit(FinalTranscript(text))
            self.finished = True
        elif isinstance(parsed, ErrorMessage):
            self._emit(TranscriptionError(f"xai: {parsed.message}", fatal=not self.ready))

    def _on_partial(self, result: TranscriptPartial) -> None:
        # xAI sends no VAD event: the first words after a final mark the start of speech.
        if result.text.strip() and not self._in_utterance:
            self._in_utterance = True
            self._emit(SpeechStarted())
        if not result.is_final:
            partial = self._results.interim(result.text)
        else:
            partial = self._results.settle(result.text)
            if result.speech_final:
                final = self._results.endpoint()
                self._in_utterance = False
                if final is not None:
                    self._emit(final)
                return
        if partial is not None:
            self._emit(partial)
