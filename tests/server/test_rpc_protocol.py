"""JSON-RPC framing, error codes, auth and body cap of the control listener."""

from __future__ import annotations

import io

import orjson
from tests.server.conftest import rpc


async def test_parse_error_is_32700(control) -> None:
    """A body that is not JSON gets -32700."""
    _, client = await control()
    response = await client.post("/rpc", data=b"{not json")
    assert (await response.json())["error"]["code"] == -32700


async def test_batch_is_rejected_as_invalid_request(control) -> None:
    """Batches are not supported: -32600."""
    _, client = await control()
    response = await client.post("/rpc", json=[{"jsonrpc": "2.0", "id": 1, "method": "x"}])
    body = await response.json()
    assert body["error"]["code"] == -32600
    assert "batch" in body["error"]["message"]


async def test_missing_version_is_invalid_request(control) -> None:
    """A request without jsonrpc 2.0 gets -32600 and echoes its id."""
    _, client = await control()
    response = await client.post("/rpc", json={"id": 7, "method": "voicecall.status"})
    body = await response.json()
    assert body["id"] == 7
    assert body["error"]["code"] == -32600


async def test_unknown_method_is_32601(control) -> None:
    """An unknown method name gets -32601."""
    _, client = await control()
    body = await rpc(client, "voicecall.nope")
    assert body["error"]["code"] == -32601


async def test_missing_param_is_32602_naming_the_field(control) -> None:
    """A missing required param gets -32602 INVALID_REQUEST naming the field."""
    _, client = await control()
    body = await rpc(client, "voicecall.initiate", {"to": "+15550001234"})
    assert body["error"]["code"] == -32602
    assert body["error"]["data"]["code"] == "INVALID_REQUEST"
    assert "message" in body["error"]["message"]


async def test_params_must_be_an_object(control) -> None:
    """Positional params are refused with -32602."""
    _, client = await control()
    body = await rpc(client, "voicecall.status", ["x"])
    assert body["error"]["code"] == -32602


async def test_runtime_validation_error_maps_to_32602(control) -> None:
    """An InvalidParamsError from the runtime is -32602 INVALID_REQUEST with its message."""
    _, client = await control()
    body = await rpc(client, "voicecall.initiate", {"message": "hi", "to": "555"})
    assert body["error"]["code"] == -32602
    assert body["error"]["message"] == "Invalid phone number: 555 (expected E.164)"


async def test_call_error_maps_to_32000_unavailable(control) -> None:
    """A CallError is -32000 UNAVAILABLE carrying the runtime's message unchanged."""
    harness, client = await control()
    call_id = (await harness.runtime.initiate(to="+15550001234"))["callId"]
    await harness.runtime.end_call(call_id)
    body = await rpc(client, "voicecall.speak", {"callId": call_id, "message": "hi"})
    assert body["error"]["code"] == -32000
    assert body["error"]["data"] == {"code": "UNAVAILABLE"}
    assert body["error"]["message"].startswith("call is not active (last state=hangup-bot")


async def test_unavailable_runtime_answers_every_method_with_its_reason(control) -> None:
    """With the runtime down, methods answer -32000 with the reason text."""
    harness, client = await control()
    harness.unavailable = "voice calls are disabled"
    for method in ("voicecall.status", "voicecall.initiate", "voicecall.tool.schema"):
        body = await rpc(client, method, {"message": "x"})
        assert body["error"]["code"] == -32000
        assert body["error"]["message"] == "voice calls are disabled"


async def test_notification_gets_no_body(control) -> None:
    """A request without id is a notification: 204 and no JSON body."""
    _, client = await control()
    response = await client.post("/rpc", json={"jsonrpc": "2.0", "method": "voicecall.status"})
    assert response.status == 204


async def test_body_over_one_mebibyte_is_refused(control) -> None:
    """A body over 1 MiB gets 413 without being processed."""
    harness, client = await control()
    big = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "voicecall.initiate",
        "params": {"message": "x" * (1024 * 1024), "to": "+15550001234"},
    }
    response = await client.post("/rpc", data=io.BytesIO(orjson.dumps(big)))
    assert response.status == 413
    assert harness.runtime.initiated == []


async def test_missing_token_gets_401_body(control) -> None:
    """With rpc.token set, /rpc without the bearer is HTTP 401 with the -32001 body."""
    _, client = await control(token="s3cret")
    response = await client.post("/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "x"})
    assert response.status == 401
    assert await response.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32001, "message": "Unauthorized"},
    }


async def test_wrong_token_gets_401(control) -> None:
    """A wrong bearer token is refused."""
    _, client = await control(token="s3cret")
    body = await rpc(client, "voicecall.status", Authorization="Bearer nope")
    assert body["error"]["code"] == -32001


async def test_right_token_is_accepted(control) -> None:
    """The right bearer token reaches the method."""
    _, client = await control(token="s3cret")
    body = await rpc(client, "voicecall.status", Authorization="Bearer s3cret")
    assert body["result"] == {"found": True, "calls": []}


async def test_healthz_needs_no_token_and_metrics_does(control) -> None:
    """/healthz is open; /metrics needs the bearer and then serves Prometheus text."""
    _, client = await control(token="s3cret")
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 401
    response = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert response.status == 200
    assert "version=0.0.4" in response.headers["Content-Type"]
    assert "voicecall_calls_started_total" in await response.text()


async def test_healthz_is_503_when_runtime_down(control) -> None:
    """/healthz reports 503 with the reason when the runtime is unavailable."""
    harness, client = await control()
    harness.unavailable = "voice call runtime not started: setup incomplete: x"
    response = await client.get("/healthz")
    assert response.status == 503
    assert (await response.json())["error"] == harness.unavailable


async def test_get_on_rpc_is_405(control) -> None:
    """/rpc only answers POST."""
    _, client = await control()
    assert (await client.get("/rpc")).status == 405
