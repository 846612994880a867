"""Shared fixtures for carrier tests: a mock carrier whose events land in a queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from voicecall.carriers.mock import MockCarrier, MockSettings

FAST = {"ring_ms": 1, "answer_ms": 2, "speech_ms_per_char": 0.01, "reply_ms": 1}

MakeCarrier = Callable[..., MockCarrier]


class EventLog:
    """Collects events the carrier pushes and waits for the next one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []

    async def sink(self, event: dict[str, Any]) -> None:
        self.seen.append(event)
        await self.queue.put(event)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue.get(), timeout=10)

    async def until(self, event_type: str) -> list[dict[str, Any]]:
        """Events up to and including the first of ``event_type``."""
        got: list[dict[str, Any]] = []
        while True:
            event = await self.next()
            got.append(event)
            if event["type"] == event_type:
                return got


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
async def make_carrier(events: EventLog) -> AsyncIterator[MakeCarrier]:
    made: list[MockCarrier] = []

    def make(**overrides: Any) -> MockCarrier:
        carrier = MockCarrier(settings=MockSettings(**{**FAST, **overrides}))
        carrier.set_event_sink(events.sink)
        made.append(carrier)
        return carrier

    yield make
    for carrier in made:
        await carrier.aclose()
