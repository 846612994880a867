"""Deepgram live streaming (`/v1/listen`): query-string setup, binary audio, JSON results."""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlencode

import orjson
from pydantic import AliasChoices, Field

from voicecall.stt.events import SessionReady, SpeechStarted, TranscriptionError
from voicecall.stt.protocol import (
    ConnectRequest,
    ProviderSettings,
    SegmentAccumulator,
    SttProtocol,
    WireModel,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DeepgramProtocol",
    "DeepgramSettings",
    "Results",
    "SpeechStartedMessage",
    "UtteranceEnd",
]

DEFAULT_BASE_URL = "wss://api.deepgram.com"
KEEPALIVE_INTERVAL_S = 5.0  # a KeepAlive after this long without audio; Deepgram drops ~10 s
FINALIZE_WAIT_S = 4.9  # how long a close waits for `from_finalize` results

_KEEPALIVE = '{"type":"KeepAlive"}'
_FINALIZE = '{"type":"Finalize"}'
_CLOSE_STREAM = '{"type":"CloseStream"}'

_ENCODINGS = {"ulaw": "mulaw", "alaw": "alaw", "pcm16": "linear16"}


class DeepgramSettings(ProviderSettings):
    """`streaming.providers.deepgram` (defaults: nova-3, µ-law 8 kHz, interim, 800 ms)."""

    model: str = Field(default="nova-3", validation_alias=AliasChoices("model", "sttModel"))
    language: str | None = None
    interim_results: bool = Field(
        default=True, validation_alias=AliasChoices("interimResults", "interim_results")
    )
    endpointing_ms: int = Field(
        default=800,
        ge=0,
        validation_alias=AliasChoices("endpointingMs", "endpointing", "silenceDurationMs"),
    )
    utterance_end_ms: int | None = Field(
        default=None, validation_alias=AliasChoices("utteranceEndMs", "utterance_end_ms")
    )


class _Word(WireModel):
    word: str = ""


class _Alternative(WireModel):
    transcript: str = ""


class _Channel(WireModel):
    alternatives: list[_Alternative] = Field(default_factory=list)


class Results(WireModel):
    """A transcription result for a span of audio."""

    type: Literal["Results"] = "Results"
    is_final: bool = False
    speech_final: bool = False
    from_finalize: bool = False
    channel: _Channel = Field(default_factory=_Channel)

    @property
    def transcript(self) -> str:
        """The top alternative's text (may be empty)."""
        alternatives = self.channel.alternatives
        return alternatives[0].transcript if alternatives else ""


class UtteranceEnd(WireModel):
    """A gap in words ended the utterance (needs interim results and `utterance_end_ms`)."""

    type: Literal["UtteranceEnd"] = "UtteranceEnd"
    last_word_end: float | None = None


class SpeechStartedMessage(WireModel):
    """Voice activity started (needs `vad_events=true`)."""

    type: Literal["SpeechStarted"] = "SpeechStarted"
    timestamp: float | None = None


class ErrorMessage(WireModel):
    """An error report before the server closes the socket."""

    type: Literal["Error"] = "Error"
    description: str | None = None
    message: str | None = None


_MESSAGES: dict[str, type[WireModel]] = {
    "Results": Results,
    "UtteranceEnd": UtteranceEnd,
    "SpeechStarted": SpeechStartedMessage,
    "Error": ErrorMessage,
}


class DeepgramProtocol(SttProtocol):
    """Sans-IO Deepgram live client."""

    provider_id: ClassVar[str] = "deepgram"
    close_timeout_s: ClassVar[float] = FINALIZE_WAIT_S + 1.0

    def __init__(self, settings: DeepgramSettings) -> None:
        super().__init__(settings.audio_format)
        self.settings = settings
        self._results = SegmentAccumulator()
        self._last_sent_s = 0.0
        self._audio_sent = False
        self._finalize_deadline: float | None = None

    def connect_request(self) -> ConnectRequest:
        """`/v1/listen` with the session setup in the query; `Authorization: Token <key>`."""
        s = self.settings
        query: dict[str, Any] = {
            "model": s.model,
            "encoding": _ENCODINGS[s.encoding],
            "sample_rate": s.sample_rate_hz,
            "channels": 1,
            "interim_results": "true" if s.interim_results else "false",
            "endpointing": s.endpointing_ms if s.endpointing_ms > 0 else "false",
            "vad_events": "true",
        }
        if s.utterance_end_ms is not None:
            query["utterance_end_ms"] = s.utterance_end_ms
        if s.language:
            query["language"] = s.language
        base = (s.base_url or DEFAULT_BASE_URL).rstrip("/")
        return ConnectRequest(
            f"{base}/v1/listen?{urlencode(query)}", {"Authorization": f"Token {s.api_key}"}
        )

    def _opened(self, now_s: float) -> None:
        self._last_sent_s = now_s
        self._audio_sent = False
        self._finalize_deadline = None
        self.ready = True  # no handshake message: the upgrade is the session
        self._emit(SessionReady())

    def send_audio(self, audio: bytes, now_s: float) -> None:
        """Audio goes out as a binary frame, unchanged."""
        self._send(audio)
        self._last_sent_s = now_s
        self._audio_sent = True

    def _close(self, now_s: float) -> None:
        if self._audio_sent:  # Finalize flushes what the server still holds
            self._send(_FINALIZE)
            self._finalize_deadline = now_s + FINALIZE_WAIT_S
        else:
            self._send(_CLOSE_STREAM)

    def tick(self, now_s: float) -> None:
        """Sends a KeepAlive when idle; ends the finalize wait when it runs out."""
        if self._finalize_deadline is not None and now_s >= self._finalize_deadline:
            self._finish_close()
        elif not self.closing and now_s - self._last_sent_s >= KEEPALIVE_INTERVAL_S:
            self._send(_KEEPALIVE)
            self._last_sent_s = now_s

    def next_deadline(self) -> float | None:
        """The finalize wait's end while closing, else the next KeepAlive."""
        if self._finalize_deadline is not None:
            return self._finalize_deadline
        if self.closing:
            return None
        return self._last_sent_s + KEEPALIVE_INTERVAL_S

    def receive(self, message: str | bytes, now_s: float) -> None:
        """Results, utterance ends, speech starts and errors."""
        data = orjson.loads(message)
        model = _MESSAGES.get(str(data.get("type"))) if isinstance(data, dict) else None
        if model is None:
            return  # Metadata and future message types carry nothing for the call
        parsed = model.model_validate(data)
        if isinstance(parsed, Results):
            self._on_results(parsed)
        elif isinstance(parsed, UtteranceEnd):
            self._final()
        elif isinstance(parsed, SpeechStartedMessage):
            self._emit(SpeechStarted())
        elif isinstance(parsed, ErrorMessage):
            text = parsed.description or parsed.message or "unknown error"
            self._emit(TranscriptionError(f"deepgram: {text}"))

    def _on_results(self, results: Results) -> None:
        if not results.is_final:
            partial = self._results.interim(results.transcript)
            if partial is not None:
                self._emit(partial)
            return
        partial = self._results.settle(results.transcript)
        if results.speech_final or results.from_finalize:
            self._final()
            if results.from_finalize and self._finalize_deadline is not None:
                self._finish_close()
        elif partial is not None:
            self._emit(partial)

    def _final(self) -> None:
        final = self._results.endpoint()
        if final is not None:
            self._emit(final)

    def _finish_close(self) -> None:
        self._finalize_deadline = None
        self._send(_CLOSE_STREAM)
