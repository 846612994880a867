"""Setup validation across keys (SPEC §1.13): what a valid file still needs before calls work."""

from __future__ import annotations

import ipaddress

from voicecall.config.models import VoicecallConfig

__all__ = [
    "BOTH_AUDIO_MODES_MESSAGE",
    "FUNNEL_PORTS",
    "is_loopback_host",
    "uses_funnel",
    "validate_setup",
]

BOTH_AUDIO_MODES_MESSAGE = (
    "realtime.enabled and streaming.enabled cannot both be true; pick one audio mode"
)
FUNNEL_PORTS = (443, 8443, 10000)


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback IP literals (no DNS)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _carrier_problems(config: VoicecallConfig) -> list[str]:
    problems: list[str] = []
    provider = config.provider
    if provider == "twilio":
        if not config.from_number:
            problems.append(
                "fromNumber is required for provider twilio (or set TWILIO_FROM_NUMBER)"
            )
        if not config.twilio.account_sid:
            problems.append("twilio.accountSid is required (or set TWILIO_ACCOUNT_SID)")
        if not config.twilio.auth_token:
            problems.append("twilio.authToken is required (or set TWILIO_AUTH_TOKEN)")
    elif provider == "telnyx":
        if not config.from_number:
            problems.append("fromNumber is required for provider telnyx")
        if not config.telnyx.api_key:
            problems.append("telnyx.apiKey is required (or set TELNYX_API_KEY)")
        if not config.telnyx.connection_id:
            problems.append("telnyx.connectionId is required (or set TELNYX_CONNECTION_ID)")
        if not config.telnyx.public_key and not config.skip_signature_verification:
            problems.append(
                "telnyx.publicKey is required unless skipSignatureVerification is true"
                " (or set TELNYX_PUBLIC_KEY)"
            )
    elif provider == "plivo":
        if not config.from_number:
            problems.append("fromNumber is required for provider plivo")
        if not config.plivo.auth_id:
            problems.append("plivo.authId is required (or set PLIVO_AUTH_ID)")
        if not config.plivo.auth_token:
            problems.append("plivo.authToken is required (or set PLIVO_AUTH_TOKEN)")
    return problems


def uses_funnel(config: VoicecallConfig) -> bool:
    """Funnel is chosen by `tailscale.mode` or `tunnel.provider`."""
    return config.tailscale.mode == "funnel" or config.tunnel.provider == "tailscale-funnel"


def validate_setup(config: VoicecallConfig) -> list[str]:
    """Every §1.13 problem of an enabled config, in SPEC order; empty when ready (or disabled)."""
    if not config.enabled:
        return []
    problems = _carrier_problems(config)
    if config.realtime.enabled and config.streaming.enabled:
        problems.append(BOTH_AUDIO_MODES_MESSAGE)
    if config.voicemail.detection == "twilio" and config.provider != "twilio":
        problems.append('voicemail.detection "twilio" requires provider twilio')
    if uses_funnel(config) and config.tailscale.port not in FUNNEL_PORTS:
        problems.append("tailscale.port must be one of 443, 8443, 10000 when using Funnel")
    if not is_loopback_host(config.rpc.bind) and not config.rpc.token:
        problems.append("rpc.token is required when rpc.bind is not a loopback address")
    return problems
