"""`${ENV}` references and environment fallbacks for credentials (SPEC §1.1, §1.3, §1.11)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from voicecall.config.problems import format_path

__all__ = [
    "AI_PROVIDER_KEY_ENV",
    "CARRIER_ENV",
    "SECRET_KEY_NAMES",
    "api_key_for",
    "apply_env_fallbacks",
    "substitute_env_refs",
]

_REF = re.compile(r"\$\$\{|\$\{([A-Z_][A-Z0-9_]*)\}")

# Keys whose values are credentials; no message ever prints their values.
SECRET_KEY_NAMES = frozenset(
    {"apiKey", "authToken", "token", "accountSid", "ngrokAuthToken", "publicKey", "authId"}
)

# Selected carrier -> (config path, env var); `fromNumber` is top-level.
CARRIER_ENV: dict[str, tuple[tuple[tuple[str, ...], str], ...]] = {
    "twilio": (
        (("twilio", "accountSid"), "TWILIO_ACCOUNT_SID"),
        (("twilio", "authToken"), "TWILIO_AUTH_TOKEN"),
        (("fromNumber",), "TWILIO_FROM_NUMBER"),
    ),
    "telnyx": (
        (("telnyx", "apiKey"), "TELNYX_API_KEY"),
        (("telnyx", "connectionId"), "TELNYX_CONNECTION_ID"),
        (("telnyx", "publicKey"), "TELNYX_PUBLIC_KEY"),
    ),
    "plivo": (
        (("plivo", "authId"), "PLIVO_AUTH_ID"),
        (("plivo", "authToken"), "PLIVO_AUTH_TOKEN"),
    ),
}

_NGROK_ENV = (
    (("tunnel", "ngrokAuthToken"), "NGROK_AUTHTOKEN"),
    (("tunnel", "ngrokDomain"), "NGROK_DOMAIN"),
)

# AI provider id -> env vars tried in order (SPEC §1.11); the same for every feature.
AI_PROVIDER_KEY_ENV: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "deepgram": ("DEEPGRAM_API_KEY",),
    "elevenlabs": ("ELEVENLABS_API_KEY",),
    "mistral": ("MISTRAL_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "google": ("GEMINI_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY", "GOOGLE_API_KEY"),
}


def _substitute(text: str, path: str, env: Mapping[str, str], problems: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "${"
        if name not in env:
            problems.append(f"environment variable {name} referenced at {path} is not set")
            return ""
        return env[name]

    return _REF.sub(replace, text)


def substitute_env_refs(
    value: Any, env: Mapping[str, str], problems: list[str], loc: tuple[str | int, ...] = ()
) -> Any:
    """A copy of `value` with `${NAME}` replaced in every string; unset names go to `problems`."""
    if isinstance(value, str):
        return _substitute(value, format_path(loc), env, problems)
    if isinstance(value, dict):
        return {k: substitute_env_refs(v, env, problems, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env_refs(v, env, problems, (*loc, i)) for i, v in enumerate(value)]
    return value


def _fill(raw: dict[str, Any], path: tuple[str, ...], env_value: str | None) -> None:
    if not env_value:
        return
    node: Any = raw
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            return  # wrong type: model validation reports it
        node = child
    if node.get(path[-1]) in (None, ""):
        node[path[-1]] = env_value


def apply_env_fallbacks(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Fill missing carrier (selected one only) and ngrok credentials from the environment."""
    for path, name in CARRIER_ENV.get(str(raw.get("provider", "mock")), ()):
        _fill(raw, path, env.get(name))
    tunnel = raw.get("tunnel")
    if isinstance(tunnel, dict) and tunnel.get("provider") == "ngrok":
        for path, name in _NGROK_ENV:
            _fill(raw, path, env.get(name))


def api_key_for(
    providers: Mapping[str, Mapping[str, Any]], provider_id: str, env: Mapping[str, str]
) -> str | None:
    """An AI provider's key: its `providers.<id>.apiKey`, else its env fallback, else None."""
    explicit = (providers.get(provider_id) or {}).get("apiKey")
    if isinstance(explicit, str) and explicit:
        return explicit
    for name in AI_PROVIDER_KEY_ENV.get(provider_id, ()):
        if env.get(name):
            return env[name]
    return None
