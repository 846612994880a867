"""The voice_call agent tool: action mapping, legacy shape, and errors returned as JSON text."""

from __future__ import annotations

from typing import Any

import orjson
from tests.server.fakes import FakeRuntime

from voicecall.errors import RpcError
from voicecall.tool import execute_tool, tool_schema


async def run(args: Any, runtime: Any = None) -> Any:
    return orjson.loads(await execute_tool(runtime or FakeRuntime(), args))


async def test_schema_lists_the_six_actions() -> None:
    """The schema names the tool and its six actions."""
    schema = tool_schema()
    assert schema["name"] == "voice_call"
    assert schema["parameters"]["properties"]["action"]["enum"] == [
        "initiate_call",
        "continue_call",
        "speak_to_user",
        "send_dtmf",
        "end_call",
        "get_status",
    ]


async def test_initiate_without_message_is_an_error_text() -> None:
    """initiate_call without message returns the §11.4 error instead of raising."""
    assert await run({"action": "initiate_call", "to": "+15550001234"}) == {
        "error": "message is required for initiate_call"
    }


async def test_every_action_against_a_runtime() -> None:
    """Each action reaches the runtime and returns its result as JSON."""
    runtime = FakeRuntime()
    started = await run({"action": "initiate_call", "message": "Hi", "to": "+15550001234"}, runtime)
    call_id = started["callId"]
    assert await run({"action": "speak_to_user", "callId": call_id, "message": "Yo"}, runtime) == {
        "success": True
    }
    assert await run({"action": "continue_call", "callId": call_id, "message": "Q"}, runtime) == {
        "success": True,
        "transcript": "heard: Q",
    }
    assert await run({"action": "send_dtmf", "callId": call_id, "digits": "9"}, runtime) == {
        "success": True
    }
    status = await run({"action": "get_status", "callId": call_id}, runtime)
    assert status["call"]["callId"] == call_id
    assert await run({"action": "end_call", "callId": call_id}, runtime) == {"success": True}


async def test_runtime_errors_are_returned_not_raised() -> None:
    """A runtime failure becomes {"error": message}."""
    assert await run({"action": "end_call", "callId": "nope"}) == {"error": "call not found: nope"}


async def test_legacy_status_without_sid() -> None:
    """Legacy {mode: status} without sid reports the exact error."""
    assert await run({"mode": "status"}) == {"error": "sid required for status"}


async def test_legacy_call_without_to() -> None:
    """Legacy {mode: call} without to reports the exact error."""
    assert await run({"mode": "call", "message": "hi"}) == {"error": "to required for call"}


async def test_legacy_call_places_a_call() -> None:
    """The legacy call shape places a call like voicecall.start."""
    runtime = FakeRuntime()
    result = await run({"to": "+15550001234", "message": "hi"}, runtime)
    assert result == {"callId": "call-1", "initiated": True}


async def test_unknown_action() -> None:
    """An unknown action is reported by name."""
    assert await run({"action": "fly"}) == {"error": "unknown action: fly"}


class RecordingClient:
    """An RpcCaller that records the methods it was asked for."""

    def __init__(self, fail: bool = False) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def rpc(self, method: str, params: dict[str, Any]) -> Any:
        self.requests.append((method, params))
        if self.fail:
            raise RpcError(-32000, "voice calls are disabled")
        return {"found": False}


async def test_tool_over_an_rpc_client() -> None:
    """With an RPC client, the tool sends the mapped method and params."""
    client = RecordingClient()
    text = await execute_tool(client, {"action": "get_status", "callId": "c1"})
    assert orjson.loads(text) == {"found": False}
    assert client.requests == [("voicecall.status", {"callId": "c1"})]


async def test_rpc_client_error_becomes_error_text() -> None:
    """An RpcError from the gateway is returned as {"error": message}."""
    text = await execute_tool(RecordingClient(fail=True), {"action": "get_status"})
    assert orjson.loads(text) == {"error": "voice calls are disabled"}
