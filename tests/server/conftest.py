"""Fixtures: the control app around a fake runtime, served on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.server.fakes import FakeRuntime

from voicecall.errors import CallError
from voicecall.server.control import ControlState, build_control_app
from voicecall.server.methods import RpcMethods
from voicecall.server.metrics import GatewayMetrics


class ControlHarness:
    """A control app plus knobs: the fake runtime, the token and why the runtime is down."""

    def __init__(self, token: str | None = None) -> None:
        self.runtime = FakeRuntime()
        self.unavailable: str | None = None
        self.metrics = GatewayMetrics()
        self.methods = RpcMethods(self._source, continue_budget_ms=lambda: 218_000)
        self.state = ControlState(
            token=token, methods=self.methods, health=self._health, metrics=self.metrics
        )

    def _source(self) -> FakeRuntime:
        if self.unavailable:
            raise CallError(self.unavailable)
        return self.runtime

    def _health(self) -> tuple[int, dict[str, Any]]:
        if self.unavailable:
            return 503, {"ok": False, "error": self.unavailable}
        return 200, {"ok": True, "activeCalls": self.runtime.active_call_count}


@pytest.fixture
async def control() -> AsyncIterator[Callable[..., Any]]:
    clients: list[TestClient[Any, Any]] = []

    async def make(token: str | None = None) -> tuple[ControlHarness, TestClient[Any, Any]]:
        harness = ControlHarness(token)
        client: TestClient[Any, Any] = TestClient(
            TestServer(build_control_app(harness.state), host="127.0.0.1", port=0)
        )
        await client.start_server()
        clients.append(client)
        return harness, client

    yield make
    for client in clients:
        await client.close()


async def rpc(
    client: TestClient[Any, Any], method: str, params: Any = None, **headers: str
) -> dict[str, Any]:
    """POST one JSON-RPC request and return the decoded response."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        body["params"] = params
    response = await client.post("/rpc", json=body, headers=headers)
    data: dict[str, Any] = await response.json()
    return data
