"""The sans-IO contract every provider protocol follows, and the helpers they share.

A protocol object owns no socket and no clock. The session feeds it what arrived
(:meth:`SttProtocol.receive`), the audio to send (:meth:`SttProtocol.send_audio`) and the time
(``now_s``, monotonic seconds); it hands back the messages to write (:meth:`data_to_send`) and
the events for the call (:meth:`events_received`). Timers are deadlines the session asks for
(:meth:`next_deadline`) and reports back through :meth:`tick`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from voicecall.errors import ConfigError
from voicecall.stt.audio import AudioFormat, Encoding, normalize_encoding
from voicecall.stt.events import FinalTranscript, PartialTranscript, SttEvent

__all__ = [
    "MAX_TRANSCRIPT_CHARS",
    "ConnectRequest",
    "ProviderSettings",
    "SegmentAccumulator",
    "SttProtocol",
    "WireModel",
    "parse_settings",
]

# Retained transcript text per session (SPEC §6.1): the newest 256 KiB are kept.
MAX_TRANSCRIPT_CHARS = 256 * 1024


def _keep_tail(text: str) -> str:
    return text[-MAX_TRANSCRIPT_CHARS:] if len(text) > MAX_TRANSCRIPT_CHARS else text


def _join(parts: list[str]) -> str:
    return _keep_tail(" ".join(p.strip() for p in parts if p.strip()))


class WireModel(BaseModel):
    """A message on a provider's wire; unknown fields are kept out, never an error."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ProviderSettings(BaseModel):
    """`streaming.providers.<id>` as the provider reads it; unknown keys are the provider's own."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    api_key: str = Field(default="", validation_alias=AliasChoices("apiKey", "api_key"))
    base_url: str = Field(default="", validation_alias=AliasChoices("baseUrl", "base_url"))
    encoding: Encoding = "ulaw"
    sample_rate_hz: int = Field(
        default=8000, gt=0, validation_alias=AliasChoices("sampleRate", "sample_rate")
    )

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, value: Any) -> Any:
        return normalize_encoding(value) if isinstance(value, str) else value

    @property
    def audio_format(self) -> AudioFormat:
        """The format audio is sent in."""
        return AudioFormat(self.encoding, self.sample_rate_hz)


SettingsT = TypeVar("SettingsT", bound=ProviderSettings)


def parse_settings(
    model: type[SettingsT], raw: Mapping[str, Any], defaults: Mapping[str, Any]
) -> SettingsT:
    """Validates a raw provider map over `defaults`; a bad value is a ConfigError naming the key."""
    try:
        return model.model_validate({**defaults, **raw})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "config"
        raise ConfigError(f"{key}: {first['msg']}") from None


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """Where and how to open the provider's websocket."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)


class SttProtocol(abc.ABC):
    """Base of the per-provider sans-IO protocols: buffers of events and outgoing messages."""

    provider_id: ClassVar[str] = ""
    #: How long the session waits, after :meth:`close`, for the last transcripts.
    close_timeout_s: ClassVar[float] = 5.0
    #: Largest audio payload per message, in ms of audio.
    max_message_ms: ClassVar[int] = 200

    def __init__(self, audio_format: AudioFormat) -> None:
        self.audio_format = audio_format
        self.ready = False
        self.closing = False
        self.finished = False
        self._events: list[SttEvent] = []
        self._outgoing: list[str | bytes] = []

    # -- what the session calls ------------------------------------------------------------
    @abc.abstractmethod
    def connect_request(self) -> ConnectRequest:
        """The URL and headers of the websocket upgrade."""

    def connection_opened(self, now_s: float) -> None:
        """A (new) socket is open: per-connection state is reset and setup messages queued."""
        self.ready = False
        self.finished = False
        self._opened(now_s)

    @abc.abstractmethod
    def receive(self, message: str | bytes, now_s: float) -> None:
        """Feeds one message from the provider."""

    @abc.abstractmethod
    def send_audio(self, audio: bytes, now_s: float) -> None:
        """Queues one audio message (already in :attr:`audio_format`)."""

    def close(self, now_s: float) -> None:
        """No more audio: queues whatever makes the provider emit its last transcripts."""
        self.closing = True
        self._close(now_s)

    def tick(self, now_s: float) -> None:
        """Time passed; deadlines at or before ``now_s`` fire (providers with timers override)."""
        return None

    def next_deadline(self) -> float | None:
        """The monotonic time the session must call :meth:`tick` at, if any."""
        return None

    def data_to_send(self) -> list[str | bytes]:
        """Messages to write, in order (text frames as str, binary frames as bytes)."""
        out, self._outgoing = self._outgoing, []
        return out

    def data_to_send_pending(self) -> bool:
        """Whether messages are waiting to be written."""
        return bool(self._outgoing)

    def events_received(self) -> list[SttEvent]:
        """Events for the call, in order."""
        out, self._events = self._events, []
        return out

    # -- for subclasses ----------------------------------------------------------------------
    def _opened(self, now_s: float) -> None:
        """Hook: queue setup messages; providers ready without a handshake set ``ready``."""
        return None

    def _close(self, now_s: float) -> None:
        """Hook: queue the closing messages."""
        return None

    def _send(self, message: str | bytes) -> None:
        self._outgoing.append(message)

    def _emit(self, event: SttEvent) -> None:
        self._events.append(event)


class SegmentAccumulator:
    """Deepgram-style results: interim text, finalized segments, and endpoint -> one final.

    ``is_final=false`` is interim (revisable); ``is_final=true`` settles a segment while the
    speaker may go on; an endpoint (``speech_final``, an utterance end, a finalize) turns the
    settled segments into one final transcript.
    """

    def __init__(self) -> None:
        self._segments: list[str] = []
        self._interim = ""

    def interim(self, text: str) -> PartialTranscript | None:
        """An interim result; the partial shows the settled segments plus it."""
        self._interim = text
        partial = _join([*self._segments, text])
        return PartialTranscript(partial) if partial else None

    def settle(self, text: str) -> PartialTranscript | None:
        """A finalized segment (no endpoint yet)."""
        self._interim = ""
        if text.strip():
            self._segments.append(text)
        partial = _join(self._segments)
        return PartialTranscript(partial) if partial else None

    def endpoint(self, *, include_interim: bool = False) -> FinalTranscript | None:
        """The utterance ended: its settled text (plus the interim one if asked) as a final."""
        parts = [*self._segments, self._interim] if include_interim else self._segments
        text = _join(parts)
        self._segments, self._interim = [], ""
        return FinalTranscript(text) if text else None

    @property
    def pending(self) -> bool:
        """Whether text has been seen that no final has carried yet."""
        return bool(self._segments or self._interim.strip())
