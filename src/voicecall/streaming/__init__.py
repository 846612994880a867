"""Live carrier audio into a call: the per-frame inbound pump and the per-call stream session."""

from __future__ import annotations

from voicecall.streaming.pump import JITTER_TARGET_FRAMES, GarbageLog, InboundPump
from voicecall.streaming.session import CallStream, StreamControl, SttFactory

__all__ = [
    "JITTER_TARGET_FRAMES",
    "CallStream",
    "GarbageLog",
    "InboundPump",
    "StreamControl",
    "SttFactory",
]
