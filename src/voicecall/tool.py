"""The `voice_call` agent tool (SPEC §11.4): its schema and an executor that never raises."""

from __future__ import annotations

import copy
from typing import Any, Protocol, runtime_checkable

import orjson

from voicecall.errors import RpcError, VoicecallError
from voicecall.server.dispatch import call_runtime_method
from voicecall.server.ports import CallOperations

__all__ = ["TOOL_SCHEMA", "RpcCaller", "execute_tool", "tool_schema", "tool_to_rpc"]

TOOL_SCHEMA: dict[str, Any] = {
    "name": "voice_call",
    "description": "Place, control and inspect phone calls.",
    "parameters": {
        "type": "object",
        "properties": {
            "action": {
                "type": "string",
                "enum": [
                    "initiate_call",
                    "continue_call",
                    "speak_to_user",
                    "send_dtmf",
                    "end_call",
                    "get_status",
                ],
            },
            "message": {"type": "string", "description": "Text to speak"},
            "to": {"type": "string", "description": "E.164 number"},
            "mode": {"type": "string", "enum": ["notify", "conversation"]},
            "dtmfSequence": {"type": "string"},
            "sessionKey": {"type": "string"},
            "callId": {"type": "string"},
            "digits": {"type": "string"},
        },
        "required": ["action"],
    },
}


@runtime_checkable
class RpcCaller(Protocol):
    """A JSON-RPC client of a running gateway (the CLI's client satisfies this)."""

    async def rpc(self, method: str, params: dict[str, Any]) -> Any: ...


class _ToolInputError(Exception):
    """The tool arguments are unusable; the message is returned to the agent."""


def tool_schema() -> dict[str, Any]:
    """A fresh copy of the §11.4 schema."""
    return copy.deepcopy(TOOL_SCHEMA)


def _text(args: dict[str, Any], key: str) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _ToolInputError(f"{key} must be a string")
    return value


def _need(args: dict[str, Any], key: str, action: str) -> str:
    value = _text(args, key)
    if value is None:
        raise _ToolInputError(f"{key} is required for {action}")
    return value


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _legacy_to_rpc(
    args: dict[str, Any], requester_session_key: str | None, agent_id: str | None
) -> tuple[str, dict[str, Any]]:
    mode = _text(args, "mode") or "call"
    if mode == "status":
        sid = _text(args, "sid")
        if sid is None:
            raise _ToolInputError("sid required for status")
        return "voicecall.status", {"sid": sid}
    if mode != "call":
        raise _ToolInputError(f'unknown mode "{mode}" (expected "call" or "status")')
    to = _text(args, "to")
    if to is None:
        raise _ToolInputError("to required for call")
    return "voicecall.start", _drop_none(
        {
            "to": to,
            "message": _text(args, "message"),
            "sessionKey": _text(args, "sessionKey"),
            "dtmfSequence": _text(args, "dtmfSequence"),
            "requesterSessionKey": requester_session_key,
            "agentId": agent_id,
        }
    )


def tool_to_rpc(
    args: dict[str, Any],
    requester_session_key: str | None = None,
    agent_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """Translate tool arguments to the JSON-RPC method and params they stand for."""
    action = _text(args, "action")
    if action is None:
        return _legacy_to_rpc(args, requester_session_key, agent_id)
    if action == "initiate_call":
        message = _need(args, "message", action)
        return "voicecall.initiate", _drop_none(
            {
                "message": message,
                "to": _text(args, "to"),
                "mode": _text(args, "mode"),
                "dtmfSequence": _text(args, "dtmfSequence"),
                "sessionKey": _text(args, "sessionKey"),
                "requesterSessionKey": requester_session_key,
                "agentId": agent_id,
            }
        )
    if action in ("continue_call", "speak_to_user"):
        call_id = _need(args, "callId", action)
        message = _need(args, "message", action)
        method = "voicecall.continue" if action == "continue_call" else "voicecall.speak"
        return method, {"callId": call_id, "message": message}
    if action == "send_dtmf":
        call_id = _need(args, "callId", action)
        return "voicecall.dtmf", {"callId": call_id, "digits": _need(args, "digits", action)}
    if action == "end_call":
        return "voicecall.end", {"callId": _need(args, "callId", action)}
    if action == "get_status":
        return "voicecall.status", _drop_none({"callId": _text(args, "callId")})
    raise _ToolInputError(f"unknown action: {action}")


def _error_text(message: str) -> str:
    return orjson.dumps({"error": message}).decode()


async def execute_tool(
    runtime_or_client: CallOperations | RpcCaller,
    args: Any,
    requester_session_key: str | None = None,
    agent_id: str | None = None,
) -> str:
    """Run one tool call; the result (or ``{"error": …}``) comes back as JSON text."""
    if not isinstance(args, dict):
        return _error_text("tool arguments must be a JSON object")
    try:
        method, params = tool_to_rpc(args, requester_session_key, agent_id)
        if isinstance(runtime_or_client, RpcCaller):
            result = await runtime_or_client.rpc(method, params)
        else:
            result = await call_runtime_method(runtime_or_client, method, params)
    except RpcError as exc:
        return _error_text(exc.message)
    except (_ToolInputError, VoicecallError) as exc:
        return _error_text(str(exc))
    except Exception as exc:  # the tool contract: every failure is returned, never raised
        return _error_text(str(exc) or type(exc).__name__)
    return orjson.dumps(result).decode()
