"""The read-only view of a live call that carriers decide their webhook replies on."""

from __future__ import annotations

from dataclasses import dataclass

from voicecall.calls.record import CallRecord

__all__ = ["CallView"]


@dataclass(frozen=True, slots=True)
class CallView:
    """A call as a carrier may see it while deciding a reply: its record plus live-only state."""

    record: CallRecord
    turn_token: str | None = None  # the pending `continue` turn's token (Twilio Gather action)
    has_waiter: bool = False  # a `continue` turn is waiting for the caller's answer
    stream_connected: bool = False  # a media stream is registered (no TwiML updates then)
    queued: bool = False  # an inbound call held while at maxConcurrentCalls (SPEC §3.2 T-QUEUE)
    initial_pending: bool = False  # metadata.initialMessage is still to be spoken
