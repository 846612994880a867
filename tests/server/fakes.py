"""A small in-memory stand-in for CallRuntime, following the runtime contract."""

from __future__ import annotations

import asyncio
from typing import Any

from voicecall.errors import CallEndedError, InvalidParamsError, UnknownCallError


class FakeRuntime:
    """Records what the control plane asked for and answers like CallRuntime."""

    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.initiated: list[dict[str, Any]] = []
        self.spoken: list[tuple[str, str]] = []
        self.digits: list[tuple[str, str]] = []
        self.events: list[dict[str, Any]] = []
        self.continue_gate: asyncio.Event | None = None
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def initiate(self, **kwargs: Any) -> dict[str, Any]:
        to = kwargs.get("to") or "+15550009999"
        if not to.startswith("+"):
            raise InvalidParamsError(f"Invalid phone number: {to} (expected E.164)")
        call_id = f"call-{len(self.calls) + 1}"
        self.initiated.append(kwargs)
        self.calls[call_id] = {"callId": call_id, "state": "initiated", "to": to}
        return {"callId": call_id, "initiated": True}

    def _live(self, call_id: str) -> dict[str, Any]:
        call = self.calls.get(call_id)
        if call is None:
            raise UnknownCallError(f"call not found: {call_id}")
        if call["state"] == "hangup-bot":
            raise CallEndedError(
                "call is not active (last state=hangup-bot, endReason=hangup-bot, "
                "endedAt=2026-01-01T00:00:00.000Z)"
            )
        return call

    async def continue_call(self, call_id: str, message: str) -> dict[str, Any]:
        self._live(call_id)
        if self.continue_gate is not None:
            await self.continue_gate.wait()
        return {"success": True, "transcript": f"heard: {message}"}

    async def speak(self, call_id: str, message: str) -> dict[str, Any]:
        self._live(call_id)
        self.spoken.append((call_id, message))
        return {"success": True}

    async def send_dtmf(self, call_id: str, digits: str) -> dict[str, Any]:
        self._live(call_id)
        self.digits.append((call_id, digits))
        return {"success": True}

    async def end_call(self, call_id: str) -> dict[str, Any]:
        if call_id not in self.calls:
            raise UnknownCallError(f"call not found: {call_id}")
        self.calls[call_id]["state"] = "hangup-bot"
        return {"success": True}

    def status(self, call_id: str | None = None, sid: str | None = None) -> dict[str, Any]:
        if call_id is not None:
            call = self.calls.get(call_id)
            return {"found": True, "call": call} if call else {"found": False}
        if sid is not None:
            return {"found": False}
        return {"found": True, "calls": list(self.calls.values())}

    async def handle_events(self, events: list[dict[str, Any]]) -> None:
        self.events.extend(events)

    @property
    def active_call_count(self) -> int:
        return sum(1 for c in self.calls.values() if c["state"] != "hangup-bot")

    @property
    def has_pending_work(self) -> bool:
        return False
