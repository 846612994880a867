"""The Telnyx carrier: Call Control v2 REST commands and Ed25519-signed webhooks (SPEC §3.3)."""

from __future__ import annotations

from voicecall.carriers.telnyx.carrier import SPEAK_FALLBACK_S, TelnyxCarrier
from voicecall.carriers.telnyx.webhook import (
    HANGUP_CAUSES,
    SignatureCheck,
    TelnyxEvent,
    load_public_key,
    parse_webhook,
    verify_signature,
)

__all__ = [
    "HANGUP_CAUSES",
    "SPEAK_FALLBACK_S",
    "SignatureCheck",
    "TelnyxCarrier",
    "TelnyxEvent",
    "load_public_key",
    "parse_webhook",
    "verify_signature",
]
