"""Which realtime provider a call uses, with its defaults, and the session that talks to it.

SPEC §7.9: ``realtime.provider`` if set, else the first *configured* provider in priority order
(openai 10, google 20). A provider is configured when it has an API key: its
``realtime.providers.<id>.apiKey``, else its environment fallback (SPEC §1.11: ``OPENAI_API_KEY``;
``GEMINI_API_KEY``, ``GOOGLE_GENERATIVE_AI_API_KEY``, ``GOOGLE_API_KEY``). When no provider is
usable (unknown id, no key, a bad setting) selection returns None and reports the exact SPEC
§1.14 warning ``realtime provider <id> unavailable: <reason>; realtime disabled``; the caller
carries on without realtime.

``realtime.providers.<id>`` is a provider-owned raw map (SPEC §1.1): the keys voicecall reads are
checked here with path-bearing messages (``realtime.providers.openai.vadThreshold must be a
number between 0 and 1``); other keys pass through in :attr:`RealtimeSelection.options` and are
named in :attr:`RealtimeSelection.warning`.

Selection is pure (config + env in, value out); :func:`create_realtime_session` only constructs
the provider session (it does not connect). Provider modules are imported lazily so importing
this module does not load the SDKs.

Usage::

    selection = select_realtime_provider(config, os.environ)   # None: warning already logged
    if selection is not None:
        session = create_realtime_session(
            selection, selection.session_config(instructions, tools), on_event
        )
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from voicecall.config import RealtimeConfig, VoicecallConfig
from voicecall.config.secrets import AI_PROVIDER_KEY_ENV
from voicecall.realtime.session import (
    RealtimeError,
    RealtimeEventCallback,
    RealtimeSession,
    SessionConfig,
    ToolSpec,
)

__all__ = [
    "FEATURE",
    "REALTIME_PROVIDERS",
    "RealtimeProvider",
    "RealtimeSelection",
    "RealtimeUnavailable",
    "create_realtime_session",
    "resolve_realtime_provider",
    "select_realtime_provider",
    "unavailable_message",
    "validate_provider_options",
]

FEATURE = "realtime"
_log = logging.getLogger("voicecall.realtime")

Warn = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RealtimeProvider:
    """A provider's auto-selection priority, defaults and the option keys voicecall reads."""

    priority: int
    model: str
    voice: str
    #: Option defaults added to :attr:`RealtimeSelection.options` when not configured.
    option_defaults: Mapping[str, Any] = field(default_factory=dict)
    #: Every key of ``realtime.providers.<id>`` that voicecall reads (checked by type).
    known_keys: frozenset[str] = frozenset()


# Keys that are not provider options: they become the selection's own fields.
_CONNECTION_KEYS = frozenset({"apiKey", "baseUrl", "model", "voice"})

REALTIME_PROVIDERS: dict[str, RealtimeProvider] = {
    "openai": RealtimeProvider(
        priority=10,
        model="gpt-realtime-2.1",
        voice="alloy",
        known_keys=_CONNECTION_KEYS | {"vadThreshold", "prefixPaddingMs", "silenceDurationMs"},
    ),
    "google": RealtimeProvider(
        priority=20,
        model="gemini-2.5-flash-native-audio-preview-12-2025",
        voice="Kore",
        option_defaults={"sessionResumption": True, "contextWindowCompression": True},
        known_keys=_CONNECTION_KEYS
        | {
            "apiVersion",
            "silenceDurationMs",
            "prefixPaddingMs",
            "startSensitivity",
            "endSensitivity",
            "sessionResumption",
            "contextWindowCompression",
        },
    ),
}

_SENSITIVITY = {
    "startSensitivity": ("low", "high", "start_sensitivity_low", "start_sensitivity_high"),
    "endSensitivity": ("low", "high", "end_sensitivity_low", "end_sensitivity_high"),
}


_URL_SCHEMES = ("http", "https", "ws", "wss")


class RealtimeUnavailable(LookupError):
    """No usable realtime provider; the message is the exact SPEC §1.14 warning."""


@dataclass(frozen=True, slots=True)
class RealtimeSelection:
    """The chosen provider with its effective settings (defaults applied).

    ``options`` holds the provider's knobs as configured (camelCase; google's
    ``sessionResumption`` / ``contextWindowCompression`` default to true) plus any key voicecall
    does not read, never ``apiKey``/``baseUrl``/``model``/``voice``. ``warning`` is a non-fatal
    note (keys passed through unread), or None. The API key is left out of the repr.
    """

    id: str
    model: str
    voice: str
    api_key: str = field(repr=False)
    base_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    warning: str | None = None

    def session_config(self, instructions: str, tools: Sequence[ToolSpec] = ()) -> SessionConfig:
        """The :class:`SessionConfig` for this provider with ``instructions`` and ``tools``."""
        return SessionConfig(
            model=self.model,
            voice=self.voice,
            instructions=instructions,
            tools=tuple(tools),
            options=dict(self.options),
        )


def unavailable_message(provider_id: str, reason: str) -> str:
    """``realtime provider <id> unavailable: <reason>; realtime disabled`` (SPEC §1.14)."""
    return f"{FEATURE} provider {provider_id} unavailable: {reason}; {FEATURE} disabled"


def _realtime(config: VoicecallConfig | RealtimeConfig) -> RealtimeConfig:
    return config.realtime if isinstance(config, VoicecallConfig) else config


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == int(value)


def _base_url_problem(value: Any) -> str | None:
    if value == "":
        return None  # unset: the provider's endpoint
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme.lower() not in _URL_SCHEMES or not parts.hostname:
        return "must be an http(s) or ws(s) URL"
    return None


def _check_option(key: str, value: Any) -> str | None:
    """What is wrong with one known key's value (without the path), or None."""
    if key in ("apiKey", "model", "voice", "apiVersion"):
        return None if isinstance(value, str) else "must be a string"
    if key == "baseUrl":
        return _base_url_problem(value)
    if key == "vadThreshold":
        ok = _is_number(value) and 0 <= value <= 1
        return None if ok else "must be a number between 0 and 1"
    if key in ("prefixPaddingMs", "silenceDurationMs"):
        return None if _is_whole(value) and value >= 0 else "must be an integer >= 0"
    if key in _SENSITIVITY:
        ok = isinstance(value, str) and value.strip().lower() in _SENSITIVITY[key]
        return None if ok else "must be one of low, high"
    if key in ("sessionResumption", "contextWindowCompression"):
        return None if isinstance(value, bool) else "must be true or false"
    return None


def validate_provider_options(provider_id: str, raw: Mapping[str, Any]) -> list[str]:
    """Problems with the keys voicecall reads in ``realtime.providers.<id>`` (path-bearing).

    Unknown providers and unknown keys are not problems (the map is provider-owned); ``None``
    and, for the string keys, ``""`` count as unset (``apiKey`` then falls back to the env).
    """
    entry = REALTIME_PROVIDERS.get(provider_id)
    if entry is None:
        return []
    problems: list[str] = []
    for key, value in raw.items():
        if key in entry.known_keys and value is not None:
            problem = _check_option(key, value)
            if problem:
                problems.append(f"{FEATURE}.providers.{provider_id}.{key} {problem}")
    return problems


def _api_key(raw: Mapping[str, Any], provider_id: str, env: Mapping[str, str]) -> str | None:
    explicit = raw.get("apiKey")
    if isinstance(explicit, str) and explicit.strip():
        return explicit
    for name in AI_PROVIDER_KEY_ENV.get(provider_id, ()):
        if env.get(name):
            return env[name]
    return None


def _text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _raw(realtime: RealtimeConfig, provider_id: str) -> Mapping[str, Any]:
    raw = realtime.providers.get(provider_id)
    return raw if isinstance(raw, Mapping) else {}


def _no_key_reason(provider_id: str) -> str:
    names = " or ".join(AI_PROVIDER_KEY_ENV[provider_id])
    return f"no API key (set {FEATURE}.providers.{provider_id}.apiKey or {names})"


def _auto_choice(realtime: RealtimeConfig, env: Mapping[str, str]) -> str:
    for provider_id in sorted(REALTIME_PROVIDERS, key=lambda p: REALTIME_PROVIDERS[p].priority):
        if _api_key(_raw(realtime, provider_id), provider_id, env):
            return provider_id
    hints = "; ".join(f"{p}: {_no_key_reason(p)}" for p in REALTIME_PROVIDERS)
    raise RealtimeUnavailable(
        unavailable_message("auto", f"no realtime provider has an API key ({hints})")
    )


def resolve_realtime_provider(
    config: VoicecallConfig | RealtimeConfig, env: Mapping[str, str]
) -> RealtimeSelection:
    """Like :func:`select_realtime_provider` but raises :class:`RealtimeUnavailable`."""
    realtime = _realtime(config)
    chosen = realtime.provider or _auto_choice(realtime, env)
    entry = REALTIME_PROVIDERS.get(chosen)
    if entry is None:
        known = ", ".join(REALTIME_PROVIDERS)
        raise RealtimeUnavailable(unavailable_message(chosen, f"unknown provider (known: {known})"))
    raw = _raw(realtime, chosen)
    problems = validate_provider_options(chosen, raw)
    if problems:
        raise RealtimeUnavailable(unavailable_message(chosen, "; ".join(problems)))
    api_key = _api_key(raw, chosen, env)
    if not api_key:
        raise RealtimeUnavailable(unavailable_message(chosen, _no_key_reason(chosen)))
    options: dict[str, Any] = dict(entry.option_defaults)
    options.update(
        (key, value)
        for key, value in raw.items()
        if key not in _CONNECTION_KEYS and not (value is None and key in entry.option_defaults)
    )
    unread = [f"{FEATURE}.providers.{chosen}.{key}" for key in raw if key not in entry.known_keys]
    warning = (
        "; ".join(
            f"{path} is not a key voicecall reads; it is passed to the provider as is"
            for path in unread
        )
        or None
    )
    return RealtimeSelection(
        id=chosen,
        model=_text(raw, "model") or entry.model,
        voice=_text(raw, "voice") or entry.voice,
        api_key=api_key,
        base_url=_text(raw, "baseUrl"),
        options=options,
        warning=warning,
    )


def select_realtime_provider(
    config: VoicecallConfig | RealtimeConfig,
    env: Mapping[str, str],
    *,
    warn: Warn | None = None,
) -> RealtimeSelection | None:
    """The realtime provider to use (SPEC §7.9), or None when there is none.

    ``None`` comes with the exact SPEC §1.14 warning passed to ``warn`` (default: logged at
    WARNING on ``voicecall.realtime``); a selection's own ``warning`` is passed there too.
    Whether ``realtime.enabled`` is set is the caller's business.
    """
    report = warn or (lambda text: _log.warning("%s", text))
    try:
        selection = resolve_realtime_provider(config, env)
    except RealtimeUnavailable as exc:
        report(str(exc))
        return None
    if selection.warning:
        report(selection.warning)
    return selection


def create_realtime_session(
    selection: RealtimeSelection,
    session_config: SessionConfig,
    on_event: RealtimeEventCallback,
) -> RealtimeSession:
    """A new, not yet started session of the selected provider (nothing is connected here).

    Raises :class:`RealtimeError` for a provider this build has no session class for, or when
    the session refuses its settings.
    """
    if selection.id == "openai":
        from voicecall.realtime.openai import OpenAIRealtimeSession

        return OpenAIRealtimeSession(
            session_config,
            api_key=selection.api_key,
            base_url=selection.base_url,
            on_event=on_event,
        )
    if selection.id == "google":
        from voicecall.realtime.google import DEFAULT_API_VERSION, GeminiLiveSession

        return GeminiLiveSession(
            session_config,
            api_key=selection.api_key,
            on_event=on_event,
            base_url=selection.base_url,
            api_version=_text(selection.options, "apiVersion") or DEFAULT_API_VERSION,
        )
    raise RealtimeError(f"no realtime session for provider {selection.id}")
