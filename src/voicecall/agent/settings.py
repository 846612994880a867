"""The agent settings the runners need, read from the `agent` config object (SPEC §1.9)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicecall.errors import ConfigError

__all__ = ["OPENAI_BASE_URL", "AgentSettings", "ProviderEndpoint", "default_store_dir"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
_DEFAULT_MODEL = "openai/gpt-4o-mini"
_DEFAULT_HISTORY_TURNS = 20


@dataclass(frozen=True, slots=True)
class ProviderEndpoint:
    """An OpenAI-compatible chat endpoint: where it is and how to authenticate."""

    base_url: str
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """``agent.*`` plus the top-level keys the runner uses (``store``)."""

    runner: str = "builtin"
    default_model: str = _DEFAULT_MODEL
    history_turns: int = _DEFAULT_HISTORY_TURNS
    providers: Mapping[str, ProviderEndpoint] = field(default_factory=dict)
    store_dir: Path = field(default_factory=lambda: default_store_dir(os.environ))

    @classmethod
    def from_config(cls, config: Any, env: Mapping[str, str]) -> AgentSettings:
        """Read the agent section; ``openai`` falls back to ``OPENAI_API_KEY`` from ``env``."""
        agent = _get(config, "agent")
        providers: dict[str, ProviderEndpoint] = {}
        for provider_id, raw in (_get(agent, "providers") or {}).items():
            base_url = _get(raw, "base_url", "baseUrl")
            if base_url is None and provider_id != "openai":
                raise ConfigError(f"agent.providers.{provider_id}.baseUrl: required")
            providers[provider_id] = ProviderEndpoint(
                base_url=str(base_url or OPENAI_BASE_URL).rstrip("/"),
                api_key=_get(raw, "api_key", "apiKey"),
            )
        openai = providers.get("openai", ProviderEndpoint(OPENAI_BASE_URL))
        if not openai.api_key and env.get("OPENAI_API_KEY"):
            openai = ProviderEndpoint(openai.base_url, env["OPENAI_API_KEY"])
        providers["openai"] = openai
        store = _get(config, "store")
        history_turns = _get(agent, "history_turns", "historyTurns") or _DEFAULT_HISTORY_TURNS
        return cls(
            runner=str(_get(agent, "runner") or "builtin"),
            default_model=str(_get(agent, "default_model", "defaultModel") or _DEFAULT_MODEL),
            history_turns=int(history_turns),
            providers=providers,
            store_dir=Path(store).expanduser() if store else default_store_dir(env),
        )


def default_store_dir(env: Mapping[str, str]) -> Path:
    """``$VOICECALL_HOME``, defaulting to ``~/.voicecall``."""
    return Path(env.get("VOICECALL_HOME") or "~/.voicecall").expanduser()


def _get(source: Any, attr: str, camel: str | None = None) -> Any:
    """Read a config value from a pydantic model (snake_case) or a mapping (camelCase)."""
    if source is None:
        return None
    if isinstance(source, Mapping):
        value = source.get(camel or attr)
        return source.get(attr) if value is None else value
    return getattr(source, attr, None)
