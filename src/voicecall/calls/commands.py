"""Commands the sans-IO call manager hands to its I/O pump (imperatives; the pump executes them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CancelTimer",
    "CarrierCommand",
    "CheckCallStatus",
    "CloseStream",
    "Command",
    "DequeueCall",
    "HangUp",
    "LogMessage",
    "PersistRecord",
    "PlaceCall",
    "PlayTts",
    "RejectWaiter",
    "ResolveWaiter",
    "RunAutoResponse",
    "SendDtmf",
    "StartListening",
    "StartTimer",
    "StopListening",
    "TimerKind",
]


class TimerKind(enum.StrEnum):
    """The timers a call can have; at most one of each kind per call is pending."""

    MAX_DURATION = "max-duration"
    NOTIFY_HANGUP = "notify-hangup"
    TRANSCRIPT = "transcript"
    STREAM_GRACE = "stream-grace"
    DTMF_COLLECT = "dtmf-collect"
    STALE_REAPER = "stale-reaper"


@dataclass(frozen=True, slots=True)
class PersistRecord:
    """Append this snapshot to the call store; ``critical`` failures abort the operation."""

    call_id: str
    snapshot: dict[str, Any]
    critical: bool = False


@dataclass(frozen=True, slots=True)
class PlaceCall:
    """Dial out; report the provider call id (or the failure) as carrier result ``op_id``."""

    op_id: str
    call_id: str
    from_number: str
    to_number: str
    mode: str
    message: str | None
    dtmf_sequence: str | None


@dataclass(frozen=True, slots=True)
class HangUp:
    """Hang the call up at the carrier (a not-found answer means it is already gone)."""

    op_id: str
    call_id: str
    provider_call_id: str


@dataclass(frozen=True, slots=True)
class PlayTts:
    """Speak ``text`` on the call; report when playback finished (or failed).

    ``kind`` says why: ``initial`` (the initial message/greeting), ``speak``, ``turn`` (a
    `continue` prompt), ``auto`` (an automatic reply) or ``apology`` (said instead of an
    automatic reply the model could not give).
    """

    op_id: str
    call_id: str
    provider_call_id: str
    text: str
    kind: str = "speak"


@dataclass(frozen=True, slots=True)
class StartListening:
    """Start collecting caller speech, tagged with the turn token when there is one."""

    op_id: str
    call_id: str
    provider_call_id: str
    turn_token: str | None


@dataclass(frozen=True, slots=True)
class StopListening:
    """Stop collecting caller speech."""

    op_id: str
    call_id: str
    provider_call_id: str


@dataclass(frozen=True, slots=True)
class SendDtmf:
    """Send DTMF digits on the call."""

    op_id: str
    call_id: str
    provider_call_id: str
    digits: str


@dataclass(frozen=True, slots=True)
class CheckCallStatus:
    """Ask the carrier whether a restored call is still up."""

    op_id: str
    call_id: str
    provider_call_id: str


@dataclass(frozen=True, slots=True)
class DequeueCall:
    """Connect an inbound caller that waited in the capacity queue (a slot is free now)."""

    op_id: str
    call_id: str
    provider_call_id: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Arm (or re-arm) the ``kind`` timer of a call to fire at ``due_ms`` (epoch ms)."""

    call_id: str
    kind: TimerKind
    due_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Disarm the ``kind`` timer of a call, if armed."""

    call_id: str
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class ResolveWaiter:
    """Complete the operation waiting under ``waiter_id`` with ``result``."""

    waiter_id: str
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RejectWaiter:
    """Fail the operation waiting under ``waiter_id``; ``error_kind`` picks the error class."""

    waiter_id: str
    message: str
    error_kind: str = "call"


@dataclass(frozen=True, slots=True)
class RunAutoResponse:
    """Ask the agent for a reply; ``opening_lines``: bot lines before the first caller turn."""

    call_id: str
    reply_id: str
    message: str
    caller_said_at_ms: int
    opening_lines: tuple[str, ...] = field(default=())
    caller_stopped_at_ms: int | None = None  # end of the caller's speech, when the VAD knows


@dataclass(frozen=True, slots=True)
class CloseStream:
    """Close the call's media stream ``stream_id`` (the call has ended; SPEC §2.4 finalize)."""

    call_id: str
    stream_id: str


@dataclass(frozen=True, slots=True)
class LogMessage:
    """A line for the gateway log."""

    level: str
    message: str


Command = (
    PersistRecord
    | PlaceCall
    | HangUp
    | PlayTts
    | StartListening
    | StopListening
    | SendDtmf
    | CheckCallStatus
    | DequeueCall
    | StartTimer
    | CancelTimer
    | ResolveWaiter
    | RejectWaiter
    | RunAutoResponse
    | CloseStream
    | LogMessage
)

CarrierCommand = (
    PlaceCall
    | HangUp
    | PlayTts
    | StartListening
    | StopListening
    | SendDtmf
    | CheckCallStatus
    | DequeueCall
)
