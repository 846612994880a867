"""The slice of CallRuntime the server and tool drive, so tests can use small fakes."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["CallOperations", "GatewayRuntime"]


class CallOperations(Protocol):
    """What the control plane needs from a call runtime (SPEC §2.2, §2.6, §10.3)."""

    async def initiate(
        self,
        *,
        to: str | None = None,
        message: str | None = None,
        mode: str | None = None,
        dtmf_sequence: str | None = None,
        from_number: str | None = None,
        agent_id: str | None = None,
        session_key: str | None = None,
        requester_session_key: str | None = None,
    ) -> dict[str, Any]: ...

    async def continue_call(self, call_id: str, message: str) -> dict[str, Any]: ...

    async def speak(self, call_id: str, message: str) -> dict[str, Any]: ...

    async def send_dtmf(self, call_id: str, digits: str) -> dict[str, Any]: ...

    async def end_call(self, call_id: str) -> dict[str, Any]: ...

    def status(self, call_id: str | None = None, sid: str | None = None) -> dict[str, Any]: ...

    @property
    def active_call_count(self) -> int: ...

    @property
    def has_pending_work(self) -> bool: ...


class GatewayRuntime(CallOperations, Protocol):
    """A CallOperations the Gateway also starts, stops and feeds webhook events to."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def handle_events(self, events: list[dict[str, Any]]) -> Any: ...
