"""The realtime model's tools and the consult texts (SPEC §7.6, §7.7), as pure values.

Tools sent to the provider, in order: ``end_call``, ``agent_consult`` (unless
``toolPolicy: "none"``), then the custom ``realtime.tools``. A custom tool named like a built-in
(``end_call`` or ``agent_consult``, whether or not the policy sends it, since the bridge
dispatches by name) or like an earlier custom tool is dropped with a warning.

The consult's results and texts live here too: the pending result of a late answer, the text
that injects a late answer, the extra system prompt of a consult run, the agent tools a consult
may use per ``toolPolicy``, and the small JSON results the bridge returns to the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from voicecall.config import RealtimeConfig, VoicecallConfig
from voicecall.config.sections import RealtimeTool
from voicecall.realtime.session import ToolSpec

__all__ = [
    "AGENT_CONSULT",
    "AGENT_CONSULT_TOOL",
    "BUILTIN_TOOL_NAMES",
    "CONSULT_ANSWER_MAX_CHARS",
    "CONSULT_PENDING_NOTE",
    "CONSULT_RESULT_PREFIX",
    "CONSULT_SYSTEM_PROMPT",
    "END_CALL",
    "END_CALL_TOOL",
    "NO_CONTEXT_NOTE",
    "SAFE_READ_ONLY_TOOLS",
    "ConsultRequest",
    "consult_answer_result",
    "consult_enabled",
    "consult_error_result",
    "consult_pending_result",
    "consult_result_injection",
    "consult_tools_allow",
    "custom_tool_spec",
    "end_call_failure_result",
    "no_context_result",
    "parse_consult_arguments",
    "realtime_tools",
    "tool_not_implemented_result",
]

_log = logging.getLogger("voicecall.realtime")

END_CALL = "end_call"
AGENT_CONSULT = "agent_consult"
BUILTIN_TOOL_NAMES = frozenset({END_CALL, AGENT_CONSULT})

END_CALL_TOOL = ToolSpec(
    name=END_CALL,
    description="End the phone call after you have said goodbye.",
    parameters={"type": "object", "properties": {}},
)

AGENT_CONSULT_TOOL = ToolSpec(
    name=AGENT_CONSULT,
    description=(
        "Hand the caller's request to the configured agent for tool-backed work, actions, "
        "memory, context or deeper reasoning before you answer."
    ),
    parameters={
        "type": "object",
        "properties": {
            "question": {
                "type": "string",
                "description": "The caller's request, complete enough to act on alone.",
            },
            "context": {
                "type": "string",
                "description": "What the call so far adds that the agent needs to know.",
            },
            "responseStyle": {
                "type": "string",
                "description": "How the answer should sound, e.g. brief or step by step.",
            },
            "confirmationId": {
                "type": "string",
                "description": "The id of an action the caller has just confirmed.",
            },
        },
        "required": ["question"],
    },
)

#: Agent tools a consult may use under ``toolPolicy: "safe-read-only"``.
SAFE_READ_ONLY_TOOLS: tuple[str, ...] = (
    "read",
    "web_search",
    "web_fetch",
    "x_search",
    "memory_search",
    "memory_get",
)

CONSULT_SYSTEM_PROMPT = (
    "You are the configured agent, answering a request delegated from a live phone call. "
    "A realtime voice model will read your answer aloud to the caller, so be accurate, brief "
    "and easy to say out loud."
)

CONSULT_PENDING_NOTE = "Tell the caller briefly that you are checking; the answer will follow."
CONSULT_RESULT_PREFIX = (
    "Internal consult result is ready. Speak this answer to the caller now, in your own words: "
)
CONSULT_ANSWER_MAX_CHARS = 1800
NO_CONTEXT_NOTE = "No indexed context found."
_ELLIPSIS = "…"

Warn = Callable[[str], None]


def _realtime(config: VoicecallConfig | RealtimeConfig) -> RealtimeConfig:
    return config.realtime if isinstance(config, VoicecallConfig) else config


def custom_tool_spec(tool: RealtimeTool) -> ToolSpec:
    """A ``realtime.tools`` entry as a :class:`ToolSpec` (``required`` only when given)."""
    parameters: dict[str, Any] = {
        "type": tool.parameters.type,
        "properties": dict(tool.parameters.properties),
    }
    if tool.parameters.required is not None:
        parameters["required"] = list(tool.parameters.required)
    return ToolSpec(name=tool.name, description=tool.description, parameters=parameters)


def consult_enabled(tool_policy: str) -> bool:
    """Whether ``agent_consult`` is offered to the model (every policy but ``none``)."""
    return tool_policy != "none"


def consult_tools_allow(tool_policy: str) -> tuple[str, ...] | None:
    """The agent tools a consult run may use: None means the runner's normal tools.

    ``safe-read-only`` → :data:`SAFE_READ_ONLY_TOOLS`; ``owner`` → None; ``none`` offers no
    consult, and should the host run one anyway it gets no tools at all (``()``).
    """
    if tool_policy == "safe-read-only":
        return SAFE_READ_ONLY_TOOLS
    if tool_policy == "owner":
        return None
    if tool_policy == "none":
        return ()
    raise ValueError(f"unknown toolPolicy {tool_policy!r} (known: safe-read-only, owner, none)")


def realtime_tools(
    config: VoicecallConfig | RealtimeConfig,
    *,
    warn: Warn | None = None,
) -> tuple[ToolSpec, ...]:
    """The tools for the provider session (SPEC §7.6), in order; collisions go to ``warn``.

    ``warn`` defaults to a WARNING on ``voicecall.realtime``.
    """
    realtime = _realtime(config)
    report = warn or (lambda text: _log.warning("%s", text))
    consult_tools_allow(realtime.tool_policy)  # raises on an unknown policy
    tools: list[ToolSpec] = [END_CALL_TOOL]
    if consult_enabled(realtime.tool_policy):
        tools.append(AGENT_CONSULT_TOOL)
    tools.extend(_custom_tools(realtime.tools, report))
    return tuple(tools)


def _custom_tools(custom: Iterable[RealtimeTool], report: Warn) -> list[ToolSpec]:
    seen: set[str] = set()
    out: list[ToolSpec] = []
    for index, tool in enumerate(custom):
        path = f"realtime.tools[{index}]"
        if tool.name in BUILTIN_TOOL_NAMES:
            report(f"{path} is named {tool.name} like a built-in tool; it is dropped")
            continue
        if tool.name in seen:
            report(f"{path} is named {tool.name} like an earlier tool; it is dropped")
            continue
        seen.add(tool.name)
        out.append(custom_tool_spec(tool))
    return out


# ---- consult arguments and results -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConsultRequest:
    """The arguments of an ``agent_consult`` call."""

    question: str
    context: str | None = None
    response_style: str | None = None
    confirmation_id: str | None = None


def _optional_text(arguments: Mapping[str, Any], key: str) -> str | None:
    value = arguments.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"agent_consult: {key} must be a string")
    return value.strip() or None


def parse_consult_arguments(arguments: Mapping[str, Any]) -> ConsultRequest:
    """The model's ``agent_consult`` arguments; ``ValueError`` names what is wrong.

    ``question`` is required and must be a non-empty string; the optional strings are stripped
    (blank means absent); other keys are ignored.
    """
    question = arguments.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("agent_consult: question is required (a non-empty string)")
    return ConsultRequest(
        question=question.strip(),
        context=_optional_text(arguments, "context"),
        response_style=_optional_text(arguments, "responseStyle"),
        confirmation_id=_optional_text(arguments, "confirmationId"),
    )


def consult_pending_result() -> dict[str, Any]:
    """The tool result when the answer is not ready within ``consultInlineWaitMs`` (I14)."""
    return {"status": "pending", "note": CONSULT_PENDING_NOTE}


def _cut_answer(answer: str) -> str:
    text = answer.strip()
    if len(text) <= CONSULT_ANSWER_MAX_CHARS:
        return text
    return text[: CONSULT_ANSWER_MAX_CHARS - len(_ELLIPSIS)].rstrip() + _ELLIPSIS


def consult_result_injection(answer: str) -> str:
    """The user item that delivers a late consult answer (answer cut to 1800 characters)."""
    return CONSULT_RESULT_PREFIX + _cut_answer(answer)


def consult_answer_result(answer: str, source: str = "agent") -> dict[str, Any]:
    """``{"answer": …, "source": "agent"|"fast-context"}``."""
    if source not in ("agent", "fast-context"):
        raise ValueError(f"unknown consult source {source!r}")
    return {"answer": answer, "source": source}


def consult_error_result(message: str) -> dict[str, Any]:
    """``{"error": …}`` for a consult that failed."""
    return {"error": message}


def no_context_result() -> dict[str, Any]:
    """fastContext found nothing and ``fallbackToConsult`` is false."""
    return {"snippets": [], "note": NO_CONTEXT_NOTE}


def tool_not_implemented_result(name: str) -> dict[str, Any]:
    """A custom tool the agent runner does not implement (SPEC §7.6)."""
    return {"error": f"tool {name} is not implemented"}


def end_call_failure_result(message: str) -> dict[str, Any]:
    """``end_call`` failed; the call goes on (SPEC §7.7)."""
    return {"ok": False, "error": message}
