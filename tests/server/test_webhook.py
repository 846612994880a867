"""The carrier-facing webhook listener with mock-carrier bodies (SPEC §3.6, §4.1)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.server.fakes import FakeRuntime

from voicecall.carriers.base import CallControl
from voicecall.carriers.mock import MockCarrier
from voicecall.server.metrics import GatewayMetrics
from voicecall.server.webhook import WebhookState, build_webhook_app


@pytest.fixture
async def hook() -> AsyncIterator[tuple[FakeRuntime, TestClient[Any, Any], GatewayMetrics]]:
    runtime = FakeRuntime()
    metrics = GatewayMetrics()
    state = WebhookState(carrier=MockCarrier(), control=cast(CallControl, runtime), metrics=metrics)
    client: TestClient[Any, Any] = TestClient(
        TestServer(build_webhook_app(state), host="127.0.0.1", port=0)
    )
    await client.start_server()
    yield runtime, client, metrics
    await client.close()


async def test_single_event_reaches_the_runtime(hook) -> None:
    """An {"event": …} body is normalized and handed to the runtime; the reply is 200 OK."""
    runtime, client, _ = hook
    response = await client.post(
        "/voice/webhook",
        json={"event": {"type": "call.speech", "callId": "c1", "transcript": "hi"}},
    )
    assert response.status == 200
    assert await response.text() == "OK"
    assert runtime.events[0]["type"] == "call.speech"
    assert runtime.events[0]["isFinal"] is True


async def test_event_list_and_trailing_slash(hook) -> None:
    """An {"events": [...]} body on the path with a trailing slash is accepted."""
    runtime, client, _ = hook
    body = {
        "events": [
            {"type": "call.ringing", "callId": "c"},
            {"type": "call.answered", "callId": "c"},
        ]
    }
    response = await client.post("/voice/webhook/", json=body)
    assert response.status == 200
    assert [e["type"] for e in runtime.events] == ["call.ringing", "call.answered"]


async def test_replayed_request_has_no_side_effects(hook) -> None:
    """The same request twice is processed once."""
    runtime, client, metrics = hook
    body = {"event": {"type": "call.ringing", "callId": "c", "id": "e1"}}
    assert (await client.post("/voice/webhook", json=body)).status == 200
    assert (await client.post("/voice/webhook", json=body)).status == 200
    assert len(runtime.events) == 1
    text = metrics.render().decode()
    assert 'voicecall_webhook_requests_total{provider="mock",result="replay"} 1.0' in text


async def test_bad_json_is_400_with_reason(hook) -> None:
    """A body that is not JSON gets 400 with a message saying so."""
    runtime, client, _ = hook
    response = await client.post("/voice/webhook", data=b"{oops")
    assert response.status == 400
    assert "invalid JSON" in await response.text()
    assert runtime.events == []


async def test_unknown_event_type_is_400(hook) -> None:
    """An event of an unknown type is refused with its path in the message."""
    _, client, _ = hook
    response = await client.post("/voice/webhook", json={"event": {"type": "call.fly"}})
    assert response.status == 400
    assert "event.type" in await response.text()


async def test_wrong_method_is_405_with_allow(hook) -> None:
    """GET on the webhook path is 405 with Allow: POST."""
    _, client, _ = hook
    response = await client.get("/voice/webhook")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"


async def test_prefix_lookalike_is_404(hook) -> None:
    """/voice/webhook-evil is not the webhook path."""
    _, client, _ = hook
    assert (await client.post("/voice/webhook-evil", json={})).status == 404
    assert (await client.post("/rpc", json={})).status == 404
    assert (await client.get("/healthz")).status == 404


async def test_oversized_body_is_413(hook) -> None:
    """A body over the webhook cap gets 413 and is not processed."""
    runtime, client, _ = hook
    response = await client.post("/voice/webhook", data=io.BytesIO(b"x" * (2 * 1024 * 1024)))
    assert response.status == 413
    assert runtime.events == []


async def test_one_bad_event_rejects_the_whole_batch(hook) -> None:
    """A batch with one malformed event is 400 and none of its events reach the runtime."""
    runtime, client, _ = hook
    body = {
        "events": [
            {"type": "call.ringing", "callId": "c"},
            {"type": "call.dtmf", "callId": "c"},
        ]
    }
    response = await client.post("/voice/webhook", json=body)
    assert response.status == 400
    assert "digits" in await response.text()
    assert runtime.events == []


async def test_bad_body_can_be_resent_after_a_fix(hook) -> None:
    """A 400 is not cached as a replay: the same request is checked again when re-sent."""
    runtime, client, metrics = hook
    for _ in range(2):
        assert (await client.post("/voice/webhook", data=b"{oops")).status == 400
    text = metrics.render().decode()
    assert 'result="replay"' not in text
    assert runtime.events == []
