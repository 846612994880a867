"""The offline mock carrier (SPEC §3.6)."""

from __future__ import annotations

from voicecall.carriers.mock.carrier import MockCall, MockCarrier, RecordedCommand
from voicecall.carriers.mock.settings import MockSettings
from voicecall.carriers.mock.webhook import VerifiedRequest, parse_webhook, verify_request

__all__ = [
    "MockCall",
    "MockCarrier",
    "MockSettings",
    "RecordedCommand",
    "VerifiedRequest",
    "parse_webhook",
    "verify_request",
]
