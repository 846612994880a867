"""Which STT provider a call uses, and the lazily imported table that builds its session."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from voicecall.config import StreamingConfig, VoicecallConfig
from voicecall.config.secrets import AI_PROVIDER_KEY_ENV, api_key_for
from voicecall.stt.base import EventCallback, ReconnectPolicy, SttSession

__all__ = [
    "FEATURE",
    "STT_PROVIDERS",
    "ProviderEntry",
    "SttUnavailable",
    "create_stt_session",
    "create_stt_session_or_warn",
    "select_stt_provider",
    "unavailable_message",
]

FEATURE = "streaming"
_log = logging.getLogger("voicecall.stt")


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    """A provider's place in auto-selection, its module and the pip extra its client needs."""

    order: int
    module: str
    extra: str | None = None
    base_url_env: str | None = None


# Auto-selection order of SPEC §6.1 (ascending).
STT_PROVIDERS: dict[str, ProviderEntry] = {
    "openai": ProviderEntry(10, "voicecall.stt.openai.session", extra="openai"),
    "xai": ProviderEntry(25, "voicecall.stt.xai.session"),
    "deepgram": ProviderEntry(
        35, "voicecall.stt.deepgram.session", base_url_env="DEEPGRAM_BASE_URL"
    ),
    "elevenlabs": ProviderEntry(40, "voicecall.stt.elevenlabs.session"),
    "mistral": ProviderEntry(50, "voicecall.stt.mistral.session"),
}


class SttUnavailable(LookupError):
    """No usable provider; the message is the exact warning text (SPEC §1.14)."""


class _SessionModule(Protocol):
    create_session: Callable[..., SttSession]


def unavailable_message(provider_id: str, reason: str) -> str:
    """`streaming provider <id> unavailable: <reason>; streaming disabled`."""
    return f"{FEATURE} provider {provider_id} unavailable: {reason}; {FEATURE} disabled"


def _streaming(config: VoicecallConfig | StreamingConfig) -> StreamingConfig:
    return config.streaming if isinstance(config, VoicecallConfig) else config


def select_stt_provider(
    config: VoicecallConfig | StreamingConfig, env: Mapping[str, str]
) -> str | None:
    """`streaming.provider`, else the first provider with config or an env key (SPEC §6.1)."""
    streaming = _streaming(config)
    if streaming.provider:
        return streaming.provider
    for provider_id in sorted(STT_PROVIDERS, key=lambda p: STT_PROVIDERS[p].order):
        if provider_id in streaming.providers or any(
            env.get(name) for name in AI_PROVIDER_KEY_ENV[provider_id]
        ):
            return provider_id
    return None


def _settings(
    streaming: StreamingConfig, provider_id: str, entry: ProviderEntry, env: Mapping[str, str]
) -> dict[str, Any]:
    raw = dict(streaming.providers.get(provider_id) or {})
    key = api_key_for(streaming.providers, provider_id, env)
    if not key:
        names = " or ".join(AI_PROVIDER_KEY_ENV[provider_id])
        raise SttUnavailable(
            unavailable_message(
                provider_id, f"no API key (set {FEATURE}.providers.{provider_id}.apiKey or {names})"
            )
        )
    raw["apiKey"] = key
    if not raw.get("baseUrl") and entry.base_url_env and env.get(entry.base_url_env):
        raw["baseUrl"] = env[entry.base_url_env]
    return raw


def create_stt_session(
    config: VoicecallConfig | StreamingConfig,
    provider_id: str | None,
    *,
    on_event: EventCallback,
    env: Mapping[str, str],
    policy: ReconnectPolicy | None = None,
) -> SttSession:
    """A new, not yet started session of `provider_id` (None: SPEC §6.1 selection).

    Raises :class:`SttUnavailable` with the exact warning when the provider is unknown, has
    no key, has a bad setting, or its client library is missing; callers log it and carry on
    without streaming (see :func:`create_stt_session_or_warn`).
    """
    streaming = _streaming(config)
    chosen = provider_id or select_stt_provider(streaming, env)
    if chosen is None:
        raise SttUnavailable(unavailable_message("auto", "no STT provider is configured"))
    entry = STT_PROVIDERS.get(chosen)
    if entry is None:
        known = ", ".join(STT_PROVIDERS)
        raise SttUnavailable(unavailable_message(chosen, f"unknown provider (known: {known})"))
    raw = _settings(streaming, chosen, entry, env)
    try:
        module = cast(_SessionModule, importlib.import_module(entry.module))
    except ImportError as exc:
        extra = f" (pip install 'voicecall[{entry.extra}]')" if entry.extra else ""
        reason = f"its client library is missing: {exc.name or exc}{extra}"
        raise SttUnavailable(unavailable_message(chosen, reason)) from None
    try:
        return module.create_session(raw, on_event, policy=policy)
    except ValueError as exc:  # ConfigError included: a bad provider setting
        raise SttUnavailable(
            unavailable_message(chosen, f"{FEATURE}.providers.{chosen}: {exc}")
        ) from None


def create_stt_session_or_warn(
    config: VoicecallConfig | StreamingConfig,
    provider_id: str | None,
    *,
    on_event: EventCallback,
    env: Mapping[str, str],
    policy: ReconnectPolicy | None = None,
    logger: logging.Logger | None = None,
) -> SttSession | None:
    """Like :func:`create_stt_session`, but logs the warning and returns None instead."""
    try:
        return create_stt_session(config, provider_id, on_event=on_event, env=env, policy=policy)
    except SttUnavailable as exc:
        (logger or _log).warning("%s", exc)
        return None
