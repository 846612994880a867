"""Every §11.2 method, answered through /rpc against a fake runtime."""

from __future__ import annotations

import asyncio

import orjson
from tests.server.conftest import rpc

from voicecall.tool import TOOL_SCHEMA


async def test_initiate_returns_call_id_and_passes_camel_case_params(control) -> None:
    """voicecall.initiate returns {callId, initiated} and forwards every optional param."""
    harness, client = await control()
    params = {
        "message": "Hello",
        "to": "+15550001234",
        "mode": "conversation",
        "dtmfSequence": "12",
        "from": "+15550000000",
        "agentId": "ops",
        "sessionKey": "s",
        "requesterSessionKey": "r",
    }
    body = await rpc(client, "voicecall.initiate", params)
    assert body["result"] == {"callId": "call-1", "initiated": True}
    assert harness.runtime.initiated == [
        {
            "to": "+15550001234",
            "message": "Hello",
            "mode": "conversation",
            "dtmf_sequence": "12",
            "from_number": "+15550000000",
            "agent_id": "ops",
            "session_key": "s",
            "requester_session_key": "r",
        }
    ]


async def test_start_requires_to_but_not_message(control) -> None:
    """voicecall.start needs `to`; `message` is optional."""
    _, client = await control()
    missing = await rpc(client, "voicecall.start", {"message": "x"})
    assert missing["error"]["code"] == -32602
    assert "to" in missing["error"]["message"]
    body = await rpc(client, "voicecall.start", {"to": "+15550001234"})
    assert body["result"]["initiated"] is True


async def test_speak_dtmf_end_and_status(control) -> None:
    """speak, dtmf and end answer {success:true}; status reports the call."""
    harness, client = await control()
    call_id = (await rpc(client, "voicecall.start", {"to": "+15550001234"}))["result"]["callId"]
    speak = await rpc(client, "voicecall.speak", {"callId": call_id, "message": "Hi"})
    assert speak["result"] == {"success": True}
    dtmf = await rpc(client, "voicecall.dtmf", {"callId": call_id, "digits": "1#"})
    assert dtmf["result"] == {"success": True}
    status = await rpc(client, "voicecall.status", {"callId": call_id})
    assert status["result"]["call"]["callId"] == call_id
    end = await rpc(client, "voicecall.end", {"callId": call_id})
    assert end["result"] == {"success": True}
    assert harness.runtime.spoken == [(call_id, "Hi")]
    assert harness.runtime.digits == [(call_id, "1#")]


async def test_speak_rejects_non_boolean_fallback_flag(control) -> None:
    """allowTwimlFallback must be a boolean."""
    _, client = await control()
    body = await rpc(
        client, "voicecall.speak", {"callId": "a", "message": "m", "allowTwimlFallback": "yes"}
    )
    assert body["error"]["code"] == -32602


async def test_unknown_call_is_32000(control) -> None:
    """Operations on an unknown call fail with the runtime's message."""
    _, client = await control()
    body = await rpc(client, "voicecall.end", {"callId": "nope"})
    assert body["error"] == {
        "code": -32000,
        "message": "call not found: nope",
        "data": {"code": "UNAVAILABLE"},
    }


async def test_blocking_continue_returns_transcript(control) -> None:
    """voicecall.continue waits and returns the caller transcript."""
    _, client = await control()
    call_id = (await rpc(client, "voicecall.start", {"to": "+15550001234"}))["result"]["callId"]
    body = await rpc(client, "voicecall.continue", {"callId": call_id, "message": "When?"})
    assert body["result"] == {"success": True, "transcript": "heard: When?"}


async def test_continue_start_then_result_until_completed_once(control) -> None:
    """continue.start is pending until the turn ends; a final result is read exactly once."""
    harness, client = await control()
    call_id = (await rpc(client, "voicecall.start", {"to": "+15550001234"}))["result"]["callId"]
    harness.runtime.continue_gate = asyncio.Event()
    started = await rpc(client, "voicecall.continue.start", {"callId": call_id, "message": "Q"})
    operation_id = started["result"]["operationId"]
    assert started["result"]["status"] == "pending"
    assert started["result"]["pollTimeoutMs"] == 218_000
    pending = await rpc(client, "voicecall.continue.result", {"operationId": operation_id})
    assert pending["result"] == {"status": "pending"}
    harness.runtime.continue_gate.set()
    await asyncio.sleep(0)
    done = await rpc(client, "voicecall.continue.result", {"operationId": operation_id})
    assert done["result"] == {
        "status": "completed",
        "result": {"success": True, "transcript": "heard: Q"},
    }
    gone = await rpc(client, "voicecall.continue.result", {"operationId": operation_id})
    assert gone["error"]["code"] == -32602


async def test_continue_start_failure_is_reported_as_failed(control) -> None:
    """A continue that fails shows status failed with the error text."""
    _, client = await control()
    started = await rpc(client, "voicecall.continue.start", {"callId": "zzz", "message": "Q"})
    operation_id = started["result"]["operationId"]
    for _ in range(5):
        await asyncio.sleep(0)
    body = await rpc(client, "voicecall.continue.result", {"operationId": operation_id})
    assert body["result"] == {"status": "failed", "error": "call not found: zzz"}


async def test_tool_method_runs_the_agent_tool(control) -> None:
    """voicecall.tool returns the tool's JSON text, passing the host session key."""
    harness, client = await control()
    body = await rpc(
        client,
        "voicecall.tool",
        {
            "args": {"action": "initiate_call", "message": "Hi", "to": "+15550001234"},
            "requesterSessionKey": "agent:main:main",
            "agentId": "main",
        },
    )
    assert orjson.loads(body["result"]) == {"callId": "call-1", "initiated": True}
    assert harness.runtime.initiated[0]["requester_session_key"] == "agent:main:main"


async def test_tool_schema_method(control) -> None:
    """voicecall.tool.schema returns the §11.4 schema."""
    _, client = await control()
    body = await rpc(client, "voicecall.tool.schema")
    assert body["result"] == TOOL_SCHEMA
