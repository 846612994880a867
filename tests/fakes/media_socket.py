"""The carrier side of one media-stream websocket to the gateway, whatever the carrier's frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Self

import aiohttp

__all__ = ["MediaSocket"]


class MediaSocket:
    """Connects on ``async with``, sends text frames and reads until the gateway closes.

    Each carrier's client subclasses it with its own frame shapes (``start``, ``media``, …).
    :meth:`listen` reads what the gateway sends in the background and lets the carrier's
    :meth:`acknowledge` answer marks the way that carrier does.
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
        self.acknowledged: list[str] = []  # names of the marks answered as played
        self._listener: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self.ws = await self.session.ws_connect(
            self.url, headers=self.headers, autoclose=False, max_msg_size=0
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_listening()
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

    def listen(self) -> None:
        """Read the gateway's frames into ``received`` in the background, acknowledging marks."""
        self._listener = asyncio.ensure_future(self._listen())

    async def stop_listening(self) -> None:
        """Stop the background reader started by :meth:`listen` (if any)."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            self.received.append(frame)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.acknowledge(frame)

    async def acknowledge(self, frame: dict[str, Any]) -> None:
        """Answer one frame from the gateway as the carrier would once its audio played.

        The base answers nothing; each carrier's client overrides it with its own echo.
        """

    def events(self) -> list[str]:
        """The ``event`` of every frame received from the gateway, in order."""
        return [str(frame.get("event")) for frame in self.received]
