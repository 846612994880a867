"""A fake OpenAI-compatible Chat Completions server: `POST /v1/chat/completions`, SSE streaming.

It listens on 127.0.0.1 (ephemeral port), records every request, appends to ``problems`` when
the client breaks the API's contract, and streams each queued reply in ``chunk_chars`` pieces as
``chat.completion.chunk`` events ending with ``data: [DONE]``. ``fail_status`` answers with an
OpenAI error body; ``stall`` sends the headers and then nothing; with ``gate`` cleared the
stream pauses after its first content chunk until the test sets it; ``error_after_chunks``
sends an in-stream error event after that many content chunks.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

__all__ = ["API_KEY", "ChatRequest", "FakeOpenAIChat"]

API_KEY = "sk-test"
_KNOWN_FIELDS = {"model", "messages", "stream", "stream_options", "temperature", "max_tokens"}


@dataclass
class ChatRequest:
    """One request as the fake received it."""

    headers: dict[str, str]
    body: Any


@dataclass
class FakeOpenAIChat:
    """Checks the bearer key and the body (model, role/content messages, ``stream: true``)."""

    replies: list[str] = field(default_factory=list)
    chunk_chars: int = 4
    api_key: str | None = API_KEY
    fail_status: int | None = None
    stall: bool = False
    error_after_chunks: int | None = None
    requests: list[ChatRequest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.first_chunk_sent = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        port = server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.gate.set()
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies received, in order."""
        return [r.body for r in self.requests]

    def _check(self, request: web.Request, body: Any) -> web.Response | None:
        expected_auth = f"Bearer {self.api_key}" if self.api_key else None
        if request.headers.get("Authorization") != expected_auth:
            return _error(401, "Incorrect API key provided.", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object", "invalid_request_error")
        if not isinstance(body.get("model"), str) or not body["model"]:
            self.problems.append(f"model: expected a name, got {body.get('model')!r}")
        if body.get("stream") is not True:
            self.problems.append(f"stream: expected true, got {body.get('stream')!r}")
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, dict)
            and m.get("role") in ("system", "user", "assistant")
            and isinstance(m.get("content"), str)
            for m in messages
        ):
            self.problems.append(f"messages: expected role/content objects, got {messages!r}")
        extra = set(body) - _KNOWN_FIELDS
        if extra:
            self.problems.append(f"unknown body fields {sorted(extra)}")
        return None

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(ChatRequest(dict(request.headers), body))
        rejected = self._check(request, body)
        if rejected is not None:
            return rejected
        if self.fail_status is not None:
            return _error(self.fail_status, "The server had an error", "server_error")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if self.stall:
            await self._stopping.wait()
            return response
        reply = self.replies.pop(0)
        await _send(response, _chunk(body["model"], {"role": "assistant", "content": ""}))
        pieces = [reply[i : i + self.chunk_chars] for i in range(0, len(reply), self.chunk_chars)]
        for index, piece in enumerate(pieces):
            if self.error_after_chunks is not None and index == self.error_after_chunks:
                error = {"error": {"message": "model overloaded", "type": "server_error"}}
                await _send(response, error)
                return response
            await response.write(b": keep-alive\n\n")
            await _send(response, _chunk(body["model"], {"content": piece}))
            self.first_chunk_sent.set()
            await self.gate.wait()
        await _send(response, _chunk(body["model"], {}, finish_reason="stop"))
        await response.write(b"data: [DONE]\n\n")
        return response


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


async def _send(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(event)}\n\n".encode())


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)
