"""What the fake TTS servers share: a loopback aiohttp server that checks requests and streams.

Each fake listens on 127.0.0.1 (ephemeral port), records every request, appends a line to
``problems`` whenever the client breaks the provider's contract, and streams its ``audio`` back
in ``chunk_bytes`` pieces. Events let a test see the stream from the server's side:
``first_chunk_sent``, ``finished`` (whole body written) and ``disconnected`` (the client went
away mid-stream). With ``gate`` cleared the fake pauses after its first chunk until the test
sets it; with ``stall`` set it sends headers and then nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

__all__ = ["API_KEY", "FakeTtsServer", "RecordedRequest"]

API_KEY = "test-key"
# An endless stream gives up after this many chunks (a bounded fake stops by itself).
_MAX_WRITES_AFTER_GATE = 2000


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


@dataclass
class FakeTtsServer:
    """Base of the provider fakes; subclasses route and check requests."""

    audio: bytes = b""
    chunk_bytes: int = 1200
    api_key: str = API_KEY
    content_type: str = "application/octet-stream"
    stall: bool = False
    endless: bool = False
    fail_status: int | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.first_chunk_sent = asyncio.Event()
        self.finished = asyncio.Event()
        self.disconnected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.gate.set()
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- subclass hooks -----------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    # -- shared behaviour ---------------------------------------------------------------------
    def expect(self, what: str, actual: object, expected: object) -> None:
        """Records a problem when the client sent something other than the contract says."""
        if actual != expected:
            self.problems.append(f"{what}: expected {expected!r}, got {actual!r}")

    async def stream_audio(self, request: web.Request) -> web.StreamResponse:
        """Streams `audio` in chunks (pausing at `gate` after the first); notes a disconnect.

        With `endless` the fake repeats its audio after the gate opens until a write fails,
        which is how a server notices that the client closed the request.
        """
        response = web.StreamResponse(headers={"Content-Type": self.content_type})
        await response.prepare(request)
        if self.stall:
            await self._stopping.wait()  # headers, then silence until the client gives up
            return response
        size = self.chunk_bytes
        chunks = [self.audio[i : i + size] for i in range(0, len(self.audio), size)]
        try:
            await response.write(chunks[0])
            self.first_chunk_sent.set()
            await self.gate.wait()
            if self.endless:
                for index in range(_MAX_WRITES_AFTER_GATE):
                    await response.write(chunks[index % len(chunks)])
                    await asyncio.sleep(0.005)
                self.problems.append("the client never closed the endless stream")
                return response
            for chunk in chunks[1:]:
                await response.write(chunk)
                await asyncio.sleep(0)
            await response.write_eof()
            self.finished.set()
        except (ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response
