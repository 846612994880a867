"""The call-control RPC methods as plain calls on a runtime (shared by /rpc and the agent tool)."""

from __future__ import annotations

from typing import Any

from voicecall.errors import RpcError
from voicecall.server.params import optional_bool, optional_str, required_str
from voicecall.server.ports import CallOperations
from voicecall.server.protocol import METHOD_NOT_FOUND

__all__ = ["RUNTIME_METHODS", "call_runtime_method"]


def _outbound_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    return {
        "mode": optional_str(params, "mode"),
        "dtmf_sequence": optional_str(params, "dtmfSequence"),
        "from_number": optional_str(params, "from"),
        "agent_id": optional_str(params, "agentId"),
        "session_key": optional_str(params, "sessionKey"),
        "requester_session_key": optional_str(params, "requesterSessionKey"),
    }


async def _initiate(runtime: CallOperations, params: dict[str, Any]) -> Any:
    message = required_str(params, "message")
    return await runtime.initiate(
        to=optional_str(params, "to"), message=message, **_outbound_kwargs(params)
    )


async def _start(runtime: CallOperations, params: dict[str, Any]) -> Any:
    to = required_str(params, "to")
    return await runtime.initiate(
        to=to, message=optional_str(params, "message"), **_outbound_kwargs(params)
    )


async def _continue(runtime: CallOperations, params: dict[str, Any]) -> Any:
    call_id = required_str(params, "callId")
    return await runtime.continue_call(call_id, required_str(params, "message"))


async def _speak(runtime: CallOperations, params: dict[str, Any]) -> Any:
    call_id = required_str(params, "callId")
    message = required_str(params, "message")
    # Carrier-native fallback is the only speak path the runtime offers today; the flag is
    # validated so callers learn about typos, and honoured once stream-aware speak exists.
    optional_bool(params, "allowTwimlFallback", True)
    return await runtime.speak(call_id, message)


async def _dtmf(runtime: CallOperations, params: dict[str, Any]) -> Any:
    call_id = required_str(params, "callId")
    return await runtime.send_dtmf(call_id, required_str(params, "digits"))


async def _end(runtime: CallOperations, params: dict[str, Any]) -> Any:
    return await runtime.end_call(required_str(params, "callId"))


async def _status(runtime: CallOperations, params: dict[str, Any]) -> Any:
    return runtime.status(call_id=optional_str(params, "callId"), sid=optional_str(params, "sid"))


RUNTIME_METHODS = {
    "voicecall.initiate": _initiate,
    "voicecall.start": _start,
    "voicecall.continue": _continue,
    "voicecall.speak": _speak,
    "voicecall.dtmf": _dtmf,
    "voicecall.end": _end,
    "voicecall.status": _status,
}


async def call_runtime_method(runtime: CallOperations, method: str, params: dict[str, Any]) -> Any:
    """Run one call-control method; unknown names raise RpcError -32601."""
    handler = RUNTIME_METHODS.get(method)
    if handler is None:
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
    return await handler(runtime, params)
