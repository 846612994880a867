"""Choose the agent runner from `agent.runner` (SPEC §9.5): builtin, offline or a factory."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

import aiohttp

from voicecall.agent.chat_completions import ChatCompletionsRunner, split_model
from voicecall.agent.offline import OfflineResponder
from voicecall.agent.settings import AgentSettings
from voicecall.agent.types import AgentRunner
from voicecall.errors import ConfigError

__all__ = ["load_runner"]


def load_runner(
    config: Any,
    env: Mapping[str, str] | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
) -> AgentRunner:
    """Build the configured runner; ``builtin`` without model credentials answers offline.

    ``session`` is accepted for callers that share one aiohttp session; the builtin runner talks
    through the openai SDK, which keeps its own HTTP pool (closed by the runner's ``aclose``).
    """
    settings = AgentSettings.from_config(config, os.environ if env is None else env)
    if settings.runner == "builtin":
        provider_id, _ = split_model(settings.default_model)
        endpoint = settings.providers.get(provider_id)
        # A keyless OpenAI endpoint cannot answer; a configured local endpoint may need no key.
        if endpoint is None or (provider_id == "openai" and not endpoint.api_key):
            return OfflineResponder()
        return ChatCompletionsRunner(settings)
    if settings.runner.startswith("python:"):
        return _load_factory(settings.runner, config)
    raise ConfigError(
        f"agent.runner: expected 'builtin' or 'python:<module>:<attr>', got {settings.runner!r}"
    )


def _load_factory(spec: str, config: Any) -> AgentRunner:
    _, _, target = spec.partition(":")
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"agent.runner: expected 'python:<module>:<attr>', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"agent.runner: cannot import {module_name!r}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"agent.runner: {module_name}.{attr} is not a callable factory")
    runner = factory(config)
    if not callable(getattr(runner, "run", None)):
        raise ConfigError(f"agent.runner: {module_name}.{attr} did not return a runner with run()")
    loaded: AgentRunner = runner
    return loaded
