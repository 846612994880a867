"""The auto-responder's agent run (SPEC §9.2): build the request, bound it, extract words."""

from __future__ import annotations

import asyncio
from typing import Any

from voicecall.agent import AgentRunner, RunRequest, build_system_prompt, build_user_message
from voicecall.agent import spoken_reply as _spoken_reply
from voicecall.calls.admission import match_route
from voicecall.calls.commands import RunAutoResponse
from voicecall.calls.record import CallRecord

__all__ = ["build_run_request", "effective_model", "generate_reply"]


def effective_model(response_model: str | None, default_model: str) -> str:
    """``provider/model`` as given; a bare model on the default's provider; else the default."""
    if not response_model:
        return default_model
    if "/" in response_model:
        return response_model
    provider = default_model.split("/", 1)[0] if "/" in default_model else "openai"
    return f"{provider}/{response_model}"


def build_run_request(
    config: Any, record: CallRecord, command: RunAutoResponse, *, now_ms: int
) -> RunRequest:
    """The §9.2 run parameters for one caller turn, with the call's number route applied."""
    route_number = record.to_number if record.direction == "inbound" else record.from_number
    matched = match_route(config.numbers, route_number)
    route = matched[1] if matched else None
    agent_id = record.agent_id or config.agent_id
    response_model = (route.response_model if route else None) or config.response_model
    custom_prompt = (
        route.response_system_prompt if route else None
    ) or config.response_system_prompt
    timeout_ms = (route.response_timeout_ms if route else None) or config.response_timeout_ms
    remote = record.from_number if record.direction == "inbound" else record.to_number
    return RunRequest(
        session_key=record.session_key or f"agent:{agent_id}:main",
        agent_id=agent_id,
        run_id=f"voice:{record.call_id}:{now_ms}",
        model=effective_model(response_model, config.agent.default_model),
        system_prompt=build_system_prompt(config.agent.name or agent_id, remote, custom_prompt),
        message=build_user_message(command.message, command.opening_lines),
        timeout_ms=timeout_ms,
        sender_is_owner=record.direction != "inbound",
    )


async def generate_reply(runner: AgentRunner, request: RunRequest) -> str:
    """Run the agent within ``request.timeout_ms``; the spoken words, ``""`` for silence."""
    try:
        result = await asyncio.wait_for(runner.run(request), request.timeout_ms / 1000)
    except TimeoutError:
        request.cancel.set()
        raise
    return _spoken_reply(result)
