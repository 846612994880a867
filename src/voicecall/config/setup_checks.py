"""The `voicecall setup` checks (SPEC §11.1), in order, with their exact texts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from voicecall.config.exposure import private_webhook_message
from voicecall.config.loader import LoadedConfig
from voicecall.config.models import VoicecallConfig
from voicecall.config.secrets import AI_PROVIDER_KEY_ENV, api_key_for
from voicecall.config.validate import (
    BOTH_AUDIO_MODES_MESSAGE,
    exposure_kind,
    local_tts_binaries,
    missing_exposure_tool,
    missing_tts_programs,
    validate_setup,
)

__all__ = [
    "OFFLINE_RESPONDER_NOTE",
    "REALTIME_OUTBOUND_ONLY_NOTE",
    "Check",
    "effective_model",
    "realtime_provider",
    "setup_checks",
    "stt_provider",
]

OFFLINE_RESPONDER_NOTE = "no model credentials, using the offline deterministic responder"
REALTIME_OUTBOUND_ONLY_NOTE = 'realtime is outbound-only while inboundPolicy is "disabled"'
# Auto-selection order (SPEC §6.1 and §7.9).
_STT_ORDER = ("openai", "xai", "deepgram", "elevenlabs", "mistral")
_REALTIME_ORDER = ("openai", "google")


@dataclass(frozen=True)
class Check:
    """One setup check: a stable id, whether it passed, and the line to show."""

    id: str
    ok: bool
    message: str


def _auto(
    explicit: str | None,
    order: tuple[str, ...],
    providers: Mapping[str, object],
    env: Mapping[str, str],
) -> str | None:
    if explicit:
        return explicit
    for provider_id in order:
        if provider_id in providers or any(env.get(n) for n in AI_PROVIDER_KEY_ENV[provider_id]):
            return provider_id
    return None


def stt_provider(config: VoicecallConfig, env: Mapping[str, str]) -> str | None:
    """`streaming.provider`, else the first configured STT provider (SPEC §6.1)."""
    return _auto(config.streaming.provider, _STT_ORDER, config.streaming.providers, env)


def realtime_provider(config: VoicecallConfig, env: Mapping[str, str]) -> str | None:
    """`realtime.provider`, else the first configured of openai, google (SPEC §7.9)."""
    return _auto(config.realtime.provider, _REALTIME_ORDER, config.realtime.providers, env)


def effective_model(config: VoicecallConfig, response_model: str | None = None) -> str:
    """`provider/model` for replies: as given, a bare model on the default provider, or default."""
    model = response_model or config.response_model
    if not model:
        return config.agent.default_model
    if "/" in model:
        return model
    return f"{config.agent.default_model.split('/', 1)[0]}/{model}"


_EXPOSED_VIA = {
    "ngrok": "exposed via ngrok",
    "tailscale-funnel": "exposed via tailscale funnel",
    "tailscale-serve": "exposed via tailscale serve (tailnet only)",
}


def _webhook_check(config: VoicecallConfig, env: Mapping[str, str]) -> Check:
    """SPEC §4.6 order: publicUrl, then tunnel/Tailscale, then the local listener URL."""
    if config.provider == "mock":
        return Check("webhook-exposure", True, "mock provider: no public webhook needed")
    missing_tool = missing_exposure_tool(config, env)
    if missing_tool:
        return Check("webhook-exposure", False, missing_tool)
    allow_private = config.webhook_security.allow_private_webhook_url
    if config.public_url:
        refusal = None if allow_private else private_webhook_message(config.public_url)
        if refusal:
            return Check("webhook-exposure", False, refusal)
        return Check("webhook-exposure", True, f"webhook: {config.public_url}")
    kind = exposure_kind(config)
    if kind is not None:
        return Check("webhook-exposure", True, _EXPOSED_VIA[kind])
    local = f"http://{_url_host(config.serve.bind)}:{config.serve.port}{config.serve.path}"
    if allow_private or not private_webhook_message(local):
        # Allowed, or a public bind address carriers can post to directly.
        return Check("webhook-exposure", True, f"webhook: {local}")
    return Check(
        "webhook-exposure",
        False,
        f"Set publicUrl or configure tunnel/tailscale so the carrier can reach {config.serve.path}",
    )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _mode_check(config: VoicecallConfig, env: Mapping[str, str]) -> Check:
    if config.realtime.enabled and config.streaming.enabled:
        return Check("mode", False, BOTH_AUDIO_MODES_MESSAGE)
    if config.realtime.enabled:
        message = f"audio mode: realtime ({realtime_provider(config, env) or 'none configured'})"
        if config.inbound_policy == "disabled":
            message += f"; {REALTIME_OUTBOUND_ONLY_NOTE}"
        return Check("mode", True, message)
    if config.streaming.enabled:
        return Check(
            "mode",
            True,
            f"audio mode: streaming ({stt_provider(config, env) or 'none configured'})",
        )
    return Check("mode", True, "audio mode: carrier-native speech")


def _agent_check(
    config: VoicecallConfig,
    env: Mapping[str, str],
    description: str | None,
    error: str | None,
) -> Check:
    if error:
        return Check("agent", False, error)
    model = effective_model(config)
    message = f"Response agent: {description or f'{config.agent_id} (model {model})'}"
    if config.agent.runner != "builtin":
        return Check("agent", True, message)
    provider_id = model.split("/", 1)[0]
    if api_key_for(config.agent.providers, provider_id, env):
        return Check("agent", True, message)
    if config.provider == "mock":
        return Check("agent", True, f"{message}; {OFFLINE_RESPONDER_NOTE}")
    needs_model = config.outbound.default_mode == "conversation"
    hint = f"set agent.providers.{provider_id}.apiKey"
    if provider_id in AI_PROVIDER_KEY_ENV:
        hint += f" or {AI_PROVIDER_KEY_ENV[provider_id][0]}"
    return Check("agent", not needs_model, f"{message}: no model credentials ({hint})")


def _tts_check(config: VoicecallConfig, env: Mapping[str, str]) -> Check | None:
    """Whether the `local` TTS program runs; only when `local` is in a TTS chain."""
    binaries = local_tts_binaries(config)
    if not binaries:
        return None
    missing = missing_tts_programs(config, env)
    if missing:
        return Check("tts", False, "; ".join(missing))
    path = env.get("PATH", os.defpath)
    found = ", ".join(f"{b} ({shutil.which(b, path=path)})" for b in binaries)
    return Check("tts", True, f"local TTS: {found}")


def setup_checks(
    loaded: LoadedConfig,
    *,
    agent_description: str | None = None,
    agent_error: str | None = None,
) -> list[Check]:
    """The §11.1 checks (+ `tts` when `local` is chosen); disabled: only the failing `enabled`."""
    config, env = loaded.config, loaded.env
    if not loaded.enabled:
        return [Check("enabled", False, "voice calls are disabled")]
    problems = validate_setup(config)
    suffix = " (offline, no real calls)" if config.provider == "mock" else ""
    checks = [
        Check("enabled", True, "voice calls enabled"),
        Check("provider", True, f"provider: {config.provider}{suffix}"),
        Check(
            "provider-config",
            not problems,
            "; ".join(problems) if problems else "configuration is complete",
        ),
        _webhook_check(config, env),
        _mode_check(config, env),
        _agent_check(config, env, agent_description, agent_error),
    ]
    # Not one of the six §11.1 checks: added only when the offline espeak-ng TTS is chosen.
    tts = _tts_check(config, env)
    return [*checks, tts] if tts is not None else checks
