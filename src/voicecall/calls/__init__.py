"""The call model (SPEC §2): states, records, events and the sans-IO call manager."""

from voicecall.calls.admission import OutboundRequest
from voicecall.calls.events import NormalizedEvent, event_from_dict
from voicecall.calls.manager import CallManager
from voicecall.calls.record import CallRecord, TranscriptEntry
from voicecall.calls.session_keys import session_key_for_call
from voicecall.calls.state import CallState, EndReason

__all__ = [
    "CallManager",
    "CallRecord",
    "CallState",
    "EndReason",
    "NormalizedEvent",
    "OutboundRequest",
    "TranscriptEntry",
    "event_from_dict",
    "session_key_for_call",
]
