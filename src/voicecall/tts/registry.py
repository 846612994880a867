"""Config -> a call's effective TTS settings and provider chain; providers imported lazily.

Effective TTS (SPEC §8.1, §1.10) = deepMerge(`messages.tts`, `tts`) (done by the loader), then
the number route's `tts`, then a per-call override. The chain (SPEC §8.3) is `tts.provider`
(auto: the first configured of openai, elevenlabs), then, with `fallback`, the other configured
providers in `tts.providers` key order. `microsoft`/`edge` (no telephony PCM output) and
providers without credentials, required settings, client library or program are skipped,
logged once per registry.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import aiohttp
import orjson
from pydantic import ValidationError

from voicecall.config import TtsConfig, VoicecallConfig
from voicecall.config.merge import deep_merge
from voicecall.config.routes import resolve_route
from voicecall.config.secrets import AI_PROVIDER_KEY_ENV, api_key_for
from voicecall.config.sections import TtsOverride
from voicecall.errors import ConfigError
from voicecall.tts.base import TtsProvider
from voicecall.tts.chain import FallbackCallback, TtsChain
from voicecall.tts.errors import TtsUnavailable

__all__ = [
    "AUTO_ORDER",
    "SKIPPED_FOR_CALLS",
    "TTS_PROVIDERS",
    "ProviderEntry",
    "TtsRegistry",
    "chain_order",
    "effective_tts_config",
]

_log = logging.getLogger("voicecall.tts")


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    """A provider's client module and what it needs: an API key, a pip extra."""

    module: str
    needs_api_key: bool = True
    extra: str | None = None


TTS_PROVIDERS: dict[str, ProviderEntry] = {
    "openai": ProviderEntry("voicecall.tts.openai.client", extra="openai"),
    "elevenlabs": ProviderEntry("voicecall.tts.elevenlabs.client"),
    "local": ProviderEntry("voicecall.tts.local.client", needs_api_key=False),
}
AUTO_ORDER = ("openai", "elevenlabs")
SKIPPED_FOR_CALLS = frozenset({"microsoft", "edge"})


class _ClientModule(Protocol):
    create_provider: Callable[..., TtsProvider]


def _override_dict(override: TtsOverride | Mapping[str, Any] | None) -> dict[str, Any]:
    if override is None:
        return {}
    if isinstance(override, TtsOverride):
        return override.model_dump(by_alias=True, exclude_none=True)
    try:
        checked = TtsOverride.model_validate(dict(override))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"tts override {key}: {first['msg']}") from None
    return checked.model_dump(by_alias=True, exclude_none=True)


def effective_tts_config(
    config: VoicecallConfig,
    *,
    number: str | None = None,
    override: TtsOverride | Mapping[str, Any] | None = None,
) -> TtsConfig:
    """The TTS settings of one call: config, then `number`'s route, then the call's override."""
    _, settings = resolve_route(config, number)
    patch = _override_dict(override)
    if not patch:
        return settings.tts
    return TtsConfig.model_validate(deep_merge(settings.tts.model_dump(by_alias=True), patch))


def _configured(tts: TtsConfig, provider_id: str, env: Mapping[str, str]) -> bool:
    return provider_id in tts.providers or any(
        env.get(name) for name in AI_PROVIDER_KEY_ENV.get(provider_id, ())
    )


def chain_order(tts: TtsConfig, env: Mapping[str, str]) -> list[str]:
    """Provider ids to try, in order, before any are skipped for missing setup."""
    primary = tts.provider or next((p for p in AUTO_ORDER if _configured(tts, p, env)), None)
    order = [primary] if primary else []
    if tts.fallback:
        order += [p for p in tts.providers if p not in order]
    return order


class TtsRegistry:
    """The process's TTS providers, built on first use and shared by every call's chain."""

    def __init__(
        self,
        config: VoicecallConfig,
        *,
        env: Mapping[str, str] | None = None,
        http_session: aiohttp.ClientSession | None = None,
        on_fallback: FallbackCallback | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self._env = dict(os.environ if env is None else env)
        self._http_session = http_session
        self._on_fallback = on_fallback
        self._log = logger or _log
        self._providers: dict[tuple[str, bytes, float], TtsProvider] = {}
        self._logged: set[str] = set()

    def chain(
        self,
        *,
        number: str | None = None,
        override: TtsOverride | Mapping[str, Any] | None = None,
    ) -> TtsChain:
        """The chain for one call (its number route and override applied).

        Raises :class:`TtsUnavailable` listing why, when no provider can be used at all.
        """
        tts = effective_tts_config(self.config, number=number, override=override)
        providers: list[TtsProvider] = []
        reasons: list[str] = []
        for provider_id in chain_order(tts, self._env):
            try:
                providers.append(self._provider(tts, provider_id))
            except (TtsUnavailable, ConfigError) as exc:
                reasons.append(str(exc))
                self._log_once(f"telephony TTS provider {provider_id} skipped: {exc}")
        if not providers:
            why = "; ".join(reasons) or "set tts.provider and tts.providers.<id>"
            raise TtsUnavailable(f"no telephony TTS provider is usable: {why}")
        return TtsChain(providers, on_fallback=self._on_fallback, logger=self._log)

    async def aclose(self) -> None:
        """Closes every provider's own client (the shared HTTP session stays open)."""
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()

    def _provider(self, tts: TtsConfig, provider_id: str) -> TtsProvider:
        if provider_id in SKIPPED_FOR_CALLS:
            raise TtsUnavailable(f"{provider_id} has no telephony PCM output")
        entry = TTS_PROVIDERS.get(provider_id)
        if entry is None:
            known = ", ".join(TTS_PROVIDERS)
            raise TtsUnavailable(f"unknown provider {provider_id} (known: {known})")
        raw = dict(tts.providers.get(provider_id) or {})
        if entry.needs_api_key:
            key = api_key_for(tts.providers, provider_id, self._env)
            if not key:
                names = " or ".join(AI_PROVIDER_KEY_ENV.get(provider_id, ()))
                raise TtsUnavailable(
                    f"no API key (set tts.providers.{provider_id}.apiKey"
                    + (f" or {names})" if names else ")")
                )
            raw["apiKey"] = key
        timeout_s = tts.timeout_ms / 1000
        cache_key = (provider_id, orjson.dumps(raw, option=orjson.OPT_SORT_KEYS), timeout_s)
        provider = self._providers.get(cache_key)
        if provider is None:
            provider = self._create(provider_id, entry, raw, timeout_s)
            self._providers[cache_key] = provider
        return provider

    def _create(
        self, provider_id: str, entry: ProviderEntry, raw: dict[str, Any], timeout_s: float
    ) -> TtsProvider:
        try:
            module = cast(_ClientModule, importlib.import_module(entry.module))
        except ImportError as exc:
            extra = f"; pip install 'voicecall[{entry.extra}]'" if entry.extra else ""
            raise TtsUnavailable(
                f"{provider_id} TTS needs the {exc.name or exc} package{extra}"
            ) from None
        options: dict[str, Any] = {"timeout_s": timeout_s, "http_session": self._http_session}
        if provider_id == "local":
            options["path"] = self._env.get("PATH", os.defpath)
        return module.create_provider(raw, **options)

    def _log_once(self, message: str) -> None:
        if message not in self._logged:
            self._logged.add(message)
            self._log.warning("%s", message)
