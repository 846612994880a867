"""The Plivo carrier: Voice API, Plivo XML and Signature V3 webhooks (SPEC §3.4)."""

from __future__ import annotations

from voicecall.carriers.plivo.carrier import PlivoCarrier
from voicecall.carriers.plivo.settings import PlivoSettings
from voicecall.carriers.plivo.webhook import (
    PlivoVerification,
    event_from_params,
    parse_form,
    sign_v2,
    sign_v3,
    verify_signature,
)

__all__ = [
    "PlivoCarrier",
    "PlivoSettings",
    "PlivoVerification",
    "event_from_params",
    "parse_form",
    "sign_v2",
    "sign_v3",
    "verify_signature",
]
