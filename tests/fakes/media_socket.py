"""The carrier side of one media-stream websocket to the gateway, whatever the carrier's frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Self

import aiohttp

__all__ = ["MediaSocket"]


class MediaSocket:
    """Connects on ``async with``, sends text frames and reads until the gateway closes.

    Each carrier's client subclasses it with its own frame shapes (``start``, ``media``, …).
    """

    def __init__(
        self, session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
    ) -> None:
        self.session = session
        self.url = url
        self.headers = headers or {}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.sequence = 0
        self.received: list[dict[str, Any]] = []

    async def __aenter__(self) -> Self:
        self.ws = await self.session.ws_connect(
            self.url, headers=self.headers, autoclose=False, max_msg_size=0
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()

    async def send_raw(self, text: str) -> None:
        """Any text frame, as is."""
        assert self.ws is not None
        await self.ws.send_str(text)

    async def closed(self, timeout_s: float = 20.0) -> tuple[int | None, str]:
        """Read until the gateway closes the socket: its close code and reason."""
        assert self.ws is not None
        async with asyncio.timeout(timeout_s):
            while True:
                msg = await self.ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    self.received.append(json.loads(msg.data))
                    continue
                if msg.type == aiohttp.WSMsgType.CLOSE:
                    reason = msg.extra or ""
                    await self.ws.close()
                    return msg.data, reason
                return self.ws.close_code, ""
