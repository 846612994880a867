"""The JSON-RPC method table of the control listener (SPEC §11.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from voicecall.errors import RpcError
from voicecall.server.dispatch import RUNTIME_METHODS, call_runtime_method
from voicecall.server.operations import ContinueOperations
from voicecall.server.params import invalid_param, optional_str, required_str
from voicecall.server.ports import CallOperations
from voicecall.server.protocol import METHOD_NOT_FOUND
from voicecall.tool import execute_tool, tool_schema

__all__ = ["METHOD_NAMES", "RpcMethods"]

METHOD_NAMES = (
    *RUNTIME_METHODS,
    "voicecall.continue.start",
    "voicecall.continue.result",
    "voicecall.tool",
    "voicecall.tool.schema",
)


class RpcMethods:
    """Answers JSON-RPC methods against whatever runtime is current.

    ``runtime_source`` returns the live runtime or raises CallError with the text that explains
    why there is none (disabled, setup incomplete, stopping); every method then fails with it.
    """

    def __init__(
        self,
        runtime_source: Callable[[], CallOperations],
        *,
        continue_budget_ms: Callable[[], int],
        operations: ContinueOperations | None = None,
    ) -> None:
        self._runtime_source = runtime_source
        self._continue_budget_ms = continue_budget_ms
        self.operations = operations or ContinueOperations()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """Run ``method``; errors propagate for the protocol layer to map."""
        if method in RUNTIME_METHODS:
            return await call_runtime_method(self._runtime_source(), method, params)
        if method == "voicecall.continue.start":
            runtime = self._runtime_source()
            call_id = required_str(params, "callId")
            message = required_str(params, "message")
            operation_id = self.operations.start(runtime.continue_call(call_id, message))
            return {
                "operationId": operation_id,
                "status": "pending",
                "pollTimeoutMs": self._continue_budget_ms(),
            }
        if method == "voicecall.continue.result":
            self._runtime_source()
            return self.operations.result(required_str(params, "operationId"))
        if method == "voicecall.tool":
            runtime = self._runtime_source()
            args = params.get("args")
            if not isinstance(args, dict):
                raise invalid_param("args", "args must be an object")
            return await execute_tool(
                runtime,
                args,
                requester_session_key=optional_str(params, "requesterSessionKey"),
                agent_id=optional_str(params, "agentId"),
            )
        if method == "voicecall.tool.schema":
            self._runtime_source()
            return tool_schema()
        raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
