"""Finds, parses and validates the config file into a `LoadedConfig` (SPEC §1.1)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5
from pydantic import ValidationError

from voicecall.config.legacy import LegacyChange, legacy_warning, rewrite_legacy, rewrite_tts_legacy
from voicecall.config.merge import deep_merge
from voicecall.config.models import VoicecallConfig
from voicecall.config.problems import validation_problems
from voicecall.config.secrets import apply_env_fallbacks, substitute_env_refs
from voicecall.config.sections import TtsConfig
from voicecall.config.tts_providers import unread_tts_keys
from voicecall.errors import ConfigError

__all__ = [
    "PROVIDER_NOT_SET_WARNING",
    "Document",
    "LoadedConfig",
    "build_config",
    "find_config_path",
    "load_config",
    "parse_document",
    "read_document",
    "split_document",
]

PROVIDER_NOT_SET_WARNING = "provider not set; using the offline mock carrier"
_JSON5_ERROR = re.compile(r"^<string>:(\d+) (.*) at column (\d+)$", re.DOTALL)


@dataclass
class LoadedConfig:
    """A validated config plus where it came from and what the loader noticed."""

    config: VoicecallConfig
    path: Path | None
    enabled: bool
    warnings: list[str] = field(default_factory=list)
    legacy_changes: list[str] = field(default_factory=list)
    # The config object as written (after legacy rewrite), `${NAME}` references unresolved.
    raw: dict[str, Any] = field(default_factory=dict)
    # The environment read at load time (SPEC §1.11); holds secrets, so kept out of repr.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Document:
    """A parsed file split into its parts: the bare config, base TTS and entry enable flag."""

    config: dict[str, Any]
    base_tts: dict[str, Any] | None
    entry_enabled: bool
    wrapped: bool


def find_config_path(path: str | Path | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """The file to read and whether it was named explicitly (`--config` or `$VOICECALL_CONFIG`)."""
    if path is not None:
        return Path(path).expanduser(), True
    if env.get("VOICECALL_CONFIG"):
        return Path(env["VOICECALL_CONFIG"]).expanduser(), True
    home = Path(env.get("VOICECALL_HOME") or "~/.voicecall").expanduser()
    for name in ("config.json5", "config.json"):
        if (home / name).is_file():
            return home / name, False
    return None, False


def parse_document(text: str, source: str) -> Any:
    """Parses JSON5 text; a syntax error names the file, line and column."""
    try:
        return json5.loads(text)
    except ValueError as exc:
        match = _JSON5_ERROR.match(str(exc))
        if match:
            line, what, column = match.groups()
            raise ConfigError(f"{source}:{line}:{column}: invalid JSON5: {what}") from None
        raise ConfigError(f"{source}: invalid JSON5: {exc}") from None


def read_document(path: Path) -> Any:
    """Reads and parses one config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    return parse_document(text, str(path))


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be an object")
    return value


def split_document(document: Any) -> Document:
    """Recognises the bare and the wrapped plugin-document shapes."""
    document = _object(document, "config")
    if "plugins" not in document:
        return Document(document, None, True, False)
    plugins = _object(document["plugins"], "plugins")
    entries = _object(plugins.get("entries", {}), "plugins.entries")
    messages = _object(document.get("messages", {}), "messages")
    base_tts = messages.get("tts")
    if base_tts is not None:
        base_tts = _object(base_tts, "messages.tts")
    entry = entries.get("voice-call")
    if entry is None:
        # A wrapped document without our entry means "disabled".
        return Document({}, base_tts, False, True)
    entry = _object(entry, 'plugins.entries["voice-call"]')
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError('plugins.entries["voice-call"].enabled must be true or false')
    config = _object(entry.get("config", {}), 'plugins.entries["voice-call"].config')
    return Document(config, base_tts, enabled, True)


def _tts_problems(tts: dict[str, Any], prefix: str) -> list[str]:
    """`messages.tts` checked on its own, so its problems carry the path the user wrote."""
    try:
        TtsConfig.model_validate(tts)
    except ValidationError as exc:
        return validation_problems(exc, prefix)
    return []


def build_config(
    document: Document, env: Mapping[str, str]
) -> tuple[VoicecallConfig, dict[str, Any], list[LegacyChange]]:
    """Legacy rewrite, env references, TTS merge, env fallbacks, then model validation."""
    raw, changes = rewrite_legacy(document.config)
    problems: list[str] = []
    resolved = substitute_env_refs(raw, env, problems)
    if document.base_tts is not None:
        base_tts = dict(document.base_tts)
        rewrite_tts_legacy(base_tts, "messages.tts", changes)
        base_tts = substitute_env_refs(base_tts, env, problems, ("messages", "tts"))
        base_problems = _tts_problems(base_tts, "messages.tts")
        problems.extend(base_problems)
        tts = resolved.get("tts", {})
        if not base_problems and isinstance(tts, dict):
            resolved["tts"] = deep_merge(base_tts, tts)
    apply_env_fallbacks(resolved, env)
    try:
        config = VoicecallConfig.model_validate(resolved)
    except ValidationError as exc:
        problems.extend(validation_problems(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return config, raw, changes


def _unread_tts_keys(config: VoicecallConfig) -> list[str]:
    """Keys of the effective TTS provider objects (and number routes') no client reads."""
    unread = unread_tts_keys(config.tts.providers)
    for number, route in config.numbers.items():
        if route.tts is not None:
            unread += unread_tts_keys(route.tts.providers, f"numbers.{number}.tts.providers")
    return unread


def load_config(
    path: str | Path | None = None, *, env: Mapping[str, str] | None = None
) -> LoadedConfig:
    """Loads the config (`path`, `$VOICECALL_CONFIG`, `$VOICECALL_HOME/config.json5|json`)."""
    environ = dict(os.environ if env is None else env)
    found, _explicit = find_config_path(path, environ)
    document = split_document(read_document(found) if found is not None else {})
    config, raw, changes = build_config(document, environ)
    warnings: list[str] = []
    if changes:
        warnings.append(legacy_warning(changes))
    if document.entry_enabled and "provider" not in raw:
        warnings.append(PROVIDER_NOT_SET_WARNING)
    warnings += [
        f"{path} is not a key voicecall reads; it is passed to the provider as is"
        for path in _unread_tts_keys(config)
    ]
    return LoadedConfig(
        config=config,
        path=found,
        enabled=document.entry_enabled and config.enabled,
        warnings=warnings,
        legacy_changes=[c.line() for c in changes],
        raw=raw,
        env=environ,
    )
