"""Realtime tools, policies and consult texts (SPEC §7.6, §7.7)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.config import RealtimeConfig, VoicecallConfig
from voicecall.realtime.session import ToolSpec
from voicecall.realtime.tools import (
    AGENT_CONSULT_TOOL,
    CONSULT_SYSTEM_PROMPT,
    END_CALL_TOOL,
    SAFE_READ_ONLY_TOOLS,
    ConsultRequest,
    consult_answer_result,
    consult_enabled,
    consult_error_result,
    consult_pending_result,
    consult_result_injection,
    consult_tools_allow,
    end_call_failure_result,
    no_context_result,
    parse_consult_arguments,
    realtime_tools,
    tool_not_implemented_result,
)

# ---- SPEC texts, copied verbatim as the oracle ------------------------------------------------

SPEC_END_CALL_DESCRIPTION = "End the phone call after you have said goodbye."
SPEC_CONSULT_DESCRIPTION = (
    "Hand the caller's request to the configured agent for tool-backed work, actions, memory, "
    "context or deeper reasoning before you answer."
)
SPEC_PENDING = (
    '{"status":"pending","note":"Tell the caller briefly that you are checking; the answer will '
    'follow."}'
)
SPEC_INJECTION_PREFIX = (
    "Internal consult result is ready. Speak this answer to the caller now, in your own words: "
)
SPEC_CONSULT_PROMPT = (
    "You are the configured agent, answering a request delegated from a live phone call. A "
    "realtime voice model will read your answer aloud to the caller, so be accurate, brief and "
    "easy to say out loud."
)
SPEC_SAFE_READ_ONLY = ("read", "web_search", "web_fetch", "x_search", "memory_search", "memory_get")


def realtime(**raw: Any) -> RealtimeConfig:
    return RealtimeConfig.model_validate(raw)


def tools_of(config: RealtimeConfig | VoicecallConfig) -> tuple[tuple[ToolSpec, ...], list[str]]:
    warnings: list[str] = []
    return realtime_tools(config, warn=warnings.append), warnings


def custom(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "function", "name": name, **extra}


# ---- built-in tools ---------------------------------------------------------------------------


def test_end_call_tool() -> None:
    assert END_CALL_TOOL.name == "end_call"
    assert END_CALL_TOOL.description == SPEC_END_CALL_DESCRIPTION
    assert END_CALL_TOOL.parameters == {"type": "object", "properties": {}}


def test_agent_consult_tool() -> None:
    assert AGENT_CONSULT_TOOL.name == "agent_consult"
    assert AGENT_CONSULT_TOOL.description == SPEC_CONSULT_DESCRIPTION
    params = AGENT_CONSULT_TOOL.parameters
    assert params["type"] == "object"
    assert params["required"] == ["question"]
    assert list(params["properties"]) == ["question", "context", "responseStyle", "confirmationId"]
    assert {p["type"] for p in params["properties"].values()} == {"string"}
    json.dumps(params)  # plain JSON


# ---- tool list and policies -------------------------------------------------------------------


def test_default_policy_sends_end_call_then_consult() -> None:
    tools, warnings = tools_of(realtime())
    assert tools == (END_CALL_TOOL, AGENT_CONSULT_TOOL)
    assert warnings == []


def test_owner_policy_sends_consult() -> None:
    tools, _ = tools_of(realtime(toolPolicy="owner"))
    assert [t.name for t in tools] == ["end_call", "agent_consult"]


def test_none_policy_drops_consult_keeps_custom_tools() -> None:
    config = realtime(toolPolicy="none", tools=[custom("lookup_order")])
    tools, _ = tools_of(config)
    assert [t.name for t in tools] == ["end_call", "lookup_order"]


def test_custom_tools_follow_builtins_as_specs() -> None:
    params = {
        "type": "object",
        "properties": {"order": {"type": "string"}},
        "required": ["order"],
    }
    config = realtime(
        tools=[
            custom("lookup_order", description="Find an order.", parameters=params),
            custom("ping"),
        ]
    )
    tools, _ = tools_of(config)
    assert tools[2:] == (
        ToolSpec("lookup_order", "Find an order.", params),
        ToolSpec("ping", "", {"type": "object", "properties": {}}),
    )


def test_whole_config_accepted() -> None:
    config = VoicecallConfig.model_validate({"realtime": {"toolPolicy": "none"}})
    tools, _ = tools_of(config)
    assert tools == (END_CALL_TOOL,)


@pytest.mark.parametrize("policy", ["safe-read-only", "owner", "none"])
@pytest.mark.parametrize("builtin", ["end_call", "agent_consult"])
def test_custom_tool_named_like_builtin_dropped(policy: str, builtin: str) -> None:
    config = realtime(toolPolicy=policy, tools=[custom(builtin, description="mine"), custom("ok")])
    tools, warnings = tools_of(config)
    assert [t.name for t in tools if t.name == builtin] == (
        [] if builtin == "agent_consult" and policy == "none" else [builtin]
    )
    assert all(t.description != "mine" for t in tools)
    assert tools[-1].name == "ok"
    assert warnings == [f"realtime.tools[0] is named {builtin} like a built-in tool; it is dropped"]


def test_duplicate_custom_tool_dropped() -> None:
    config = realtime(tools=[custom("a", description="first"), custom("a", description="second")])
    tools, warnings = tools_of(config)
    assert [t.description for t in tools if t.name == "a"] == ["first"]
    assert warnings == ["realtime.tools[1] is named a like an earlier tool; it is dropped"]


@pytest.mark.parametrize(
    ("policy", "enabled", "allow"),
    [
        ("safe-read-only", True, SPEC_SAFE_READ_ONLY),
        ("owner", True, None),
        ("none", False, ()),
    ],
)
def test_tool_policies(policy: str, enabled: bool, allow: tuple[str, ...] | None) -> None:
    assert consult_enabled(policy) is enabled
    assert consult_tools_allow(policy) == allow


def test_safe_read_only_list() -> None:
    assert SAFE_READ_ONLY_TOOLS == SPEC_SAFE_READ_ONLY


def test_unknown_tool_policy() -> None:
    with pytest.raises(ValueError, match="toolPolicy"):
        consult_tools_allow("admin")


# ---- consult texts and results ----------------------------------------------------------------


def test_consult_system_prompt() -> None:
    assert CONSULT_SYSTEM_PROMPT == SPEC_CONSULT_PROMPT


def test_pending_result() -> None:
    assert consult_pending_result() == json.loads(SPEC_PENDING)
    assert consult_pending_result() is not consult_pending_result()  # callers may mutate theirs


def test_injection_text() -> None:
    assert consult_result_injection("It opens at nine.") == SPEC_INJECTION_PREFIX + (
        "It opens at nine."
    )


def test_injection_text_cuts_long_answers() -> None:
    text = consult_result_injection("a" * 5000)
    answer = text.removeprefix(SPEC_INJECTION_PREFIX)
    assert len(answer) == 1800 and answer.endswith("…")


@given(st.text(max_size=2500))
def test_injected_answer_never_exceeds_1800(answer: str) -> None:
    text = consult_result_injection(answer)
    assert text.startswith(SPEC_INJECTION_PREFIX)
    spoken = text.removeprefix(SPEC_INJECTION_PREFIX)
    assert len(spoken) <= 1800
    if len(answer.strip()) <= 1800:
        assert spoken == answer.strip()


def test_small_results() -> None:
    assert consult_answer_result("Nine.") == {"answer": "Nine.", "source": "agent"}
    assert consult_answer_result("x", "fast-context") == {"answer": "x", "source": "fast-context"}
    with pytest.raises(ValueError):
        consult_answer_result("x", "memory")
    assert consult_error_result("timed out") == {"error": "timed out"}
    assert no_context_result() == {"snippets": [], "note": "No indexed context found."}
    assert tool_not_implemented_result("lookup") == {"error": "tool lookup is not implemented"}
    assert end_call_failure_result("no call") == {"ok": False, "error": "no call"}


def test_parse_consult_arguments() -> None:
    request = parse_consult_arguments(
        {
            "question": " When do you open? ",
            "context": "caller is in Paris",
            "responseStyle": " ",
            "confirmationId": "c-1",
            "extra": 1,
        }
    )
    assert request == ConsultRequest(
        question="When do you open?",
        context="caller is in Paris",
        response_style=None,
        confirmation_id="c-1",
    )


@pytest.mark.parametrize(
    "arguments", [{}, {"question": ""}, {"question": 3}, {"question": "q", "context": 5}]
)
def test_parse_consult_arguments_refuses(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="agent_consult"):
        parse_consult_arguments(arguments)
