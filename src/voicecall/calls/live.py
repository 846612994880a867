"""What the call manager keeps per live call and per outstanding carrier operation."""

from __future__ import annotations

from dataclasses import dataclass, field

from voicecall.calls.record import CallRecord
from voicecall.calls.state import EndReason

__all__ = ["CarrierOp", "LiveCall", "Turn"]


@dataclass
class Turn:
    """A `continue` turn in progress: its transcript token, its waiter and its clock marks."""

    token: str
    waiter_id: str
    started_at_ms: int
    listen_started_at_ms: int | None = None


@dataclass
class LiveCall:
    """A non-terminal call: its record plus the in-memory state that is never persisted."""

    record: CallRecord
    turn: Turn | None = None
    initial_in_flight: bool = False
    duration_timer_armed: bool = False
    ending_op: str | None = None
    end_waiters: list[str] = field(default_factory=list)
    end_reason: EndReason = EndReason.HANGUP_BOT
    reply_id: str | None = None
    dtmf_buffer: str = ""
    stream_id: str | None = None
    queued: bool = False


@dataclass(frozen=True)
class CarrierOp:
    """A carrier command sent out under an ``op_id`` whose result has not come back yet."""

    kind: str
    call_id: str
    waiter_id: str | None = None
    listen_after: bool = False
    started_at_ms: int = 0
    transcript_index: int | None = None  # the bot line a playback wrote
    text: str = ""  # what a playback says
