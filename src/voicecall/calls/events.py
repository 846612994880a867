"""Normalized carrier events (SPEC §2.4): the one shape every carrier's webhooks become."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from voicecall.errors import InvalidParamsError

__all__ = [
    "AmdDetected",
    "AssistantSpoke",
    "CallActivated",
    "CallAnswered",
    "CallEnded",
    "CallErrored",
    "CallInitiated",
    "CallRinging",
    "DtmfReceived",
    "NormalizedEvent",
    "RecordingReady",
    "SilenceDetected",
    "SpeakingStarted",
    "SpeechReceived",
    "event_from_dict",
]


class _Event(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    dedupe_key: str | None = Field(default=None, alias="dedupeKey")
    call_id: str | None = Field(default=None, alias="callId")
    provider_call_id: str | None = Field(default=None, alias="providerCallId")
    timestamp_ms: int = Field(alias="timestamp")
    turn_token: str | None = Field(default=None, alias="turnToken")
    direction: Literal["inbound", "outbound"] | None = None
    from_number: str | None = Field(default=None, alias="from")
    to_number: str | None = Field(default=None, alias="to")

    @property
    def dedupe_id(self) -> str:
        """The key this event is deduplicated on: ``dedupeKey`` if given, else ``id``."""
        return self.dedupe_key or self.id


class CallInitiated(_Event):
    """The carrier created the call."""

    type: Literal["call.initiated"]


class CallRinging(_Event):
    """The far end is ringing."""

    type: Literal["call.ringing"]


class CallAnswered(_Event):
    """The far end picked up."""

    type: Literal["call.answered"]


class CallActivated(_Event):
    """The call is up and media flows."""

    type: Literal["call.active"]


class SpeakingStarted(_Event):
    """The bot started speaking ``text``."""

    type: Literal["call.speaking"]
    text: str = ""


class SpeechReceived(_Event):
    """The caller said something (a partial or final transcript)."""

    type: Literal["call.speech"]
    transcript: str
    is_final: bool = Field(default=True, alias="isFinal")
    confidence: float | None = None
    # When the caller stopped talking (epoch ms; from the media stream's VAD, if it knows).
    speech_ended_at_ms: int | None = Field(default=None, alias="speechEndedAt")


class SilenceDetected(_Event):
    """The caller was silent for ``duration_ms``."""

    type: Literal["call.silence"]
    duration_ms: int = Field(default=0, alias="durationMs")


class DtmfReceived(_Event):
    """The caller pressed keys."""

    type: Literal["call.dtmf"]
    digits: str


class CallEnded(_Event):
    """The call ended, with the carrier's reason."""

    type: Literal["call.ended"]
    reason: str = "completed"


class CallErrored(_Event):
    """The carrier reported an error; ``retryable`` errors do not end the call."""

    type: Literal["call.error"]
    error: str = "unknown error"
    retryable: bool = False


class AssistantSpoke(_Event):
    """The bot's own speech as heard on the line (realtime transcripts)."""

    type: Literal["call.assistant-speech"]
    transcript: str


class AmdDetected(_Event):
    """Answering-machine detection said who answered."""

    type: Literal["call.amd"]
    answered_by: str = Field(alias="answeredBy")


class RecordingReady(_Event):
    """A call recording is available."""

    type: Literal["call.recording"]
    sid: str
    url: str
    duration_sec: float | None = Field(default=None, alias="durationSec")
    status: str | None = None


NormalizedEvent = Annotated[
    CallInitiated
    | CallRinging
    | CallAnswered
    | CallActivated
    | SpeakingStarted
    | SpeechReceived
    | SilenceDetected
    | DtmfReceived
    | CallEnded
    | CallErrored
    | AssistantSpoke
    | AmdDetected
    | RecordingReady,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[NormalizedEvent] = TypeAdapter(NormalizedEvent)


def event_from_dict(data: Mapping[str, Any]) -> NormalizedEvent:
    """Parse a normalized-event dict; a bad or missing field is an error that names it."""
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        path = [str(part) for part in first["loc"]]
        # The discriminator puts the event type first in the location; drop it.
        if len(path) > 1 and path[0] == data.get("type"):
            path = path[1:]
        field = ".".join(path) or "type"
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field = "type"
            message = f"unknown event type {data.get('type')!r}"
        else:
            message = first["msg"]
        raise InvalidParamsError(f"invalid event field {field}: {message}") from None
