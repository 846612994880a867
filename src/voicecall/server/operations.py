"""Background `continue` operations polled by `voicecall.continue.start` / `.result` (§11.2)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from voicecall.errors import InvalidParamsError

__all__ = ["OPERATION_TTL_MS", "ContinueOperations"]

OPERATION_TTL_MS = 5 * 60 * 1000


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


@dataclass(slots=True)
class _Operation:
    task: asyncio.Task[Any]
    created_ms: int
    finished_ms: int | None = None
    outcome: dict[str, Any] = field(default_factory=lambda: {"status": "pending"})


class ContinueOperations:
    """Runs `continue` turns in the background and keeps their outcome for five minutes."""

    def __init__(self, *, clock_ms: Callable[[], int] = _monotonic_ms) -> None:
        self._clock_ms = clock_ms
        self._operations: dict[str, _Operation] = {}

    def __len__(self) -> int:
        return len(self._operations)

    @property
    def pending(self) -> int:
        """How many operations are still running."""
        return sum(1 for op in self._operations.values() if not op.task.done())

    def start(self, work: Awaitable[Any]) -> str:
        """Start ``work`` and return the operation id to poll."""
        self._prune()
        operation_id = str(uuid.uuid4())

        async def run() -> Any:
            return await work

        task = asyncio.get_running_loop().create_task(run())
        operation = _Operation(task=task, created_ms=self._clock_ms())
        self._operations[operation_id] = operation
        task.add_done_callback(lambda done: self._finish(operation, done))
        return operation_id

    def _finish(self, operation: _Operation, task: asyncio.Task[Any]) -> None:
        operation.finished_ms = self._clock_ms()
        if task.cancelled():
            operation.outcome = {"status": "failed", "error": "voicecall runtime stopped"}
        elif (error := task.exception()) is not None:
            operation.outcome = {"status": "failed", "error": str(error) or type(error).__name__}
        else:
            operation.outcome = {"status": "completed", "result": task.result()}

    def result(self, operation_id: str) -> dict[str, Any]:
        """The operation's status; a final status is returned once, then forgotten."""
        self._prune()
        operation = self._operations.get(operation_id)
        if operation is None:
            error = InvalidParamsError(f"unknown operation: {operation_id}")
            error.field = "operationId"  # type: ignore[attr-defined]
            raise error
        if operation.outcome["status"] != "pending":
            del self._operations[operation_id]
        return dict(operation.outcome)

    def _prune(self) -> None:
        # Pending operations live until they finish; finished ones TTL out unread.
        now_ms = self._clock_ms()
        expired = [
            key
            for key, op in self._operations.items()
            if op.finished_ms is not None and now_ms - op.created_ms > OPERATION_TTL_MS
        ]
        for key in expired:
            del self._operations[key]

    async def aclose(self) -> None:
        """Cancel every pending operation and wait for them to settle."""
        tasks = [op.task for op in self._operations.values() if not op.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
