"""The Twilio carrier (SPEC §3.1, §3.2): signed webhooks, TwiML flows and REST control."""

from __future__ import annotations

from voicecall.carriers.twilio.carrier import TwilioCarrier

__all__ = ["TwilioCarrier"]
