"""The agent runner contract (SPEC §9.5): what a run gets, what it returns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["AgentRunner", "Payload", "RunRequest", "RunResult"]


@dataclass(frozen=True, slots=True)
class Payload:
    """One piece of runner output; error and reasoning payloads are never spoken."""

    text: str
    is_error: bool = False
    is_reasoning: bool = False


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run: its payloads and whether it was aborted."""

    payloads: list[Payload] = field(default_factory=list)
    aborted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """Everything a runner needs for one reply; ``timeout_ms`` bounds the whole run."""

    session_key: str
    agent_id: str
    run_id: str
    model: str
    system_prompt: str
    message: str
    timeout_ms: int
    tools_allow: list[str] | None = None
    sender_is_owner: bool = False
    provenance: str = "external_user/voice"
    thinking_level: str | None = None
    fast_mode: bool | None = None
    extra_system_prompt: str | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    on_text_delta: Callable[[str], None] | None = None


@runtime_checkable
class AgentRunner(Protocol):
    """Produces the agent's reply to one caller message.

    Runners may also offer ``call_tool(name, args, context)`` and
    ``search(query, sources, max_results)``; the runtime checks for them with ``hasattr``.
    """

    async def run(self, request: RunRequest) -> RunResult:
        """Run the agent once and return its payloads."""
        ...
