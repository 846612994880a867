"""Setup validation across keys (SPEC §1.13): what a valid file still needs before calls work."""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Mapping
from typing import Literal

from voicecall.config.models import VoicecallConfig
from voicecall.config.routes import resolve_route
from voicecall.config.sections import TtsConfig
from voicecall.config.tts_providers import LOCAL_TTS_DEFAULT_BINARY, missing_local_binary_message

__all__ = [
    "BOTH_AUDIO_MODES_MESSAGE",
    "FUNNEL_PORTS",
    "NGROK_INSTALL_HINT",
    "TAILSCALE_INSTALL_HINT",
    "ExposureKind",
    "exposure_kind",
    "is_loopback_host",
    "local_tts_binaries",
    "missing_exposure_tool",
    "missing_tts_programs",
    "uses_funnel",
    "validate_setup",
]

ExposureKind = Literal["ngrok", "tailscale-serve", "tailscale-funnel"]

NGROK_INSTALL_HINT = (
    "ngrok not found on PATH; install the ngrok agent (https://ngrok.com/download)"
    ' or set tunnel.provider to "none"'
)
TAILSCALE_INSTALL_HINT = (
    "tailscale not found on PATH; install Tailscale (https://tailscale.com/download)"
    ' or set tunnel.provider to "none" and tailscale.mode to "off"'
)

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


def exposure_kind(config: VoicecallConfig) -> ExposureKind | None:
    """The exposure the runtime starts; `tunnel.provider` wins over legacy `tailscale.mode`."""
    provider = config.tunnel.provider
    if provider != "none":
        return provider
    if config.tailscale.mode == "serve":
        return "tailscale-serve"
    if config.tailscale.mode == "funnel":
        return "tailscale-funnel"
    return None


def missing_exposure_tool(config: VoicecallConfig, env: Mapping[str, str]) -> str | None:
    """The install hint when the configured ngrok/tailscale binary is not on env's PATH."""
    kind = exposure_kind(config)
    if kind is None:
        return None
    binary, hint = (
        ("ngrok", NGROK_INSTALL_HINT)
        if kind == "ngrok"
        else (
            "tailscale",
            TAILSCALE_INSTALL_HINT,
        )
    )
    return None if shutil.which(binary, path=env.get("PATH")) else hint


def _local_binary(tts: TtsConfig) -> str | None:
    """espeak-ng's program when `local` is in this TTS chain (primary, or a fallback)."""
    if tts.provider != "local" and not (tts.fallback and "local" in tts.providers):
        return None
    binary = (tts.providers.get("local") or {}).get("binary")
    return binary if isinstance(binary, str) and binary else LOCAL_TTS_DEFAULT_BINARY


def local_tts_binaries(config: VoicecallConfig) -> list[str]:
    """The programs the `local` TTS provider runs, for the config's and every route's TTS."""
    configs = [config.tts] + [resolve_route(config, key)[1].tts for key in config.numbers]
    binaries = (_local_binary(tts) for tts in configs)
    return list(dict.fromkeys(b for b in binaries if b is not None))


def missing_tts_programs(config: VoicecallConfig, env: Mapping[str, str]) -> list[str]:
    """One message per `local` TTS program not found on env's PATH (the registry's lookup)."""
    path = env.get("PATH", os.defpath)
    return [
        missing_local_binary_message(binary)
        for binary in local_tts_binaries(config)
        if shutil.which(binary, path=path) is None
    ]


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
