"""What every fake STT server shares: a loopback websocket server that records and checks.

Each fake listens on 127.0.0.1 (ephemeral port), records every upgrade (path, query, headers)
and what each connection received, and appends a line to ``problems`` whenever the client
breaks the provider's protocol. Transcripts come from a script: the fake runs the media core's
VAD over the audio it is sent, and each utterance it hears yields the next scripted text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from voicecall.media import SPEECH_STARTED, VadFramer

__all__ = ["API_KEY", "Connection", "FakeSttServer", "UtteranceScript"]

API_KEY = "test-key"
# Frames of speech before the fake shows its first partial transcript.
_PARTIAL_AFTER_FRAMES = 10


class UtteranceScript:
    """Server-side VAD over µ-law 8 kHz: events ('started' | 'partial' | 'final', text)."""

    def __init__(self, texts: list[str]) -> None:
        self._texts = list(texts)
        self._index = 0
        self._framer = VadFramer(stop_frames=25)
        self._speech_frames = 0
        self.in_speech = False

    @property
    def current(self) -> str:
        """The scripted text of the utterance being heard (or next)."""
        return self._texts[self._index] if self._index < len(self._texts) else "(unscripted)"

    @property
    def finals(self) -> int:
        """How many utterances have been finalized."""
        return self._index

    def first_words(self) -> str:
        """What a partial shows: the first word of the utterance."""
        return self.current.split()[0]

    def feed(self, ulaw: bytes) -> list[tuple[str, str]]:
        """Events for this audio."""
        out: list[tuple[str, str]] = []
        for offset in range(0, len(ulaw), 160):
            for event in self._framer.process(ulaw[offset : offset + 160]):
                if event.kind == SPEECH_STARTED:
                    self.in_speech = True
                    self._speech_frames = 0
                    out.append(("started", ""))
                elif self.in_speech:  # not already finished by the client
                    out.append(self.finish())
            if self.in_speech:
                self._speech_frames += 1
                if self._speech_frames == _PARTIAL_AFTER_FRAMES:
                    out.append(("partial", self.first_words()))
        return out

    def finish(self) -> tuple[str, str]:
        """Ends the current utterance (VAD stop, or the client asked to finalize)."""
        text = self.current
        self.in_speech = False
        self._index += 1
        return ("final", text)


@dataclass
class Connection:
    """One accepted upgrade and what arrived on it."""

    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    audio: bytearray = field(default_factory=bytearray)
    messages: list[Any] = field(default_factory=list)
    script: UtteranceScript | None = None


class FakeSttServer:
    """Base of the per-provider fakes; subclasses implement :meth:`serve_connection`."""

    path = "/"

    def __init__(
        self,
        script: list[str] | None = None,
        *,
        api_key: str = API_KEY,
        drop_after_bytes: int | None = None,
        refuse_after: int | None = None,
    ) -> None:
        self.script = list(script or [])
        self.api_key = api_key
        self.drop_after_bytes = drop_after_bytes
        self.refuse_after = refuse_after
        # Cleared by a test: upgrades and session-ready wait until it is set again.
        self.release_ready = asyncio.Event()
        self.release_ready.set()
        self.attempts = 0
        self.connections: list[Connection] = []
        self.problems: list[str] = []
        self._server: Server | None = None

    # -- hooks -------------------------------------------------------------------------------
    def authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether the upgrade carries the right credentials."""
        raise NotImplementedError

    async def serve_connection(self, ws: ServerConnection, conn: Connection) -> None:
        """Speaks the provider's protocol on one accepted connection."""
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------
    def check(self, ok: bool, problem: str) -> None:
        """Records a protocol violation by the client."""
        if not ok:
            self.problems.append(problem)

    def expect_query(self, conn: Connection, expected: Mapping[str, str]) -> None:
        """Checks query parameters the provider needs."""
        for key, value in expected.items():
            self.check(conn.query.get(key) == value, f"query {key}={conn.query.get(key)!r}")

    def took_audio(self, ws: ServerConnection, conn: Connection, audio: bytes) -> None:
        """Records audio; drops the first connection once ``drop_after_bytes`` arrived."""
        conn.audio += audio
        if (
            self.drop_after_bytes is not None
            and len(self.connections) == 1
            and len(conn.audio) >= self.drop_after_bytes
        ):
            ws.transport.abort()  # an abrupt network loss, no closing handshake

    @property
    def base_url(self) -> str:
        """`ws://127.0.0.1:<port>` (the fake's `baseUrl`)."""
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    @property
    def audio(self) -> bytes:
        """Everything received over all connections, in order."""
        return b"".join(bytes(c.audio) for c in self.connections)

    # -- server ------------------------------------------------------------------------------
    async def __aenter__(self) -> FakeSttServer:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, compression=None
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        self.attempts += 1
        await self.release_ready.wait()  # tests hold the upgrade to keep the client connecting
        if self.refuse_after is not None and self.attempts > self.refuse_after:
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "overloaded\n")
        if urlsplit(request.path).path != self.path:
            self.problems.append(f"unexpected path {request.path}")
            return ws.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if not self.reject_in_protocol and not self.authorized(request.headers):
            return ws.respond(HTTPStatus.UNAUTHORIZED, "invalid credentials\n")
        return None

    reject_in_protocol = False  # providers that accept the upgrade and report auth in-band

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        parts = urlsplit(request.path)
        # A reconnect picks up the script where the previous connection left it.
        done = sum(c.script.finals for c in self.connections if c.script)
        conn = Connection(parts.path, dict(parse_qsl(parts.query)), request.headers)
        conn.script = UtteranceScript(self.script[done:])
        self.connections.append(conn)
        with contextlib.suppress(ConnectionClosed):
            await self.serve_connection(ws, conn)
