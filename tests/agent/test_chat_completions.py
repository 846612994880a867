"""The builtin runner against a local fake OpenAI-compatible chat-completions server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from voicecall.agent import (
    AgentSettings,
    ChatCompletionsRunner,
    ProviderEndpoint,
    RunRequest,
    spoken_reply,
)
from voicecall.agent.history import session_file_name
from voicecall.errors import CallError


@dataclass
class FakeOpenAI:
    """Streams canned replies as SSE chunks and records what it was asked."""

    replies: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    status: int = 200
    hold: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.auth.append(request.headers.get("Authorization"))
        if self.status != 200:
            return web.json_response({"error": {"message": "nope"}}, status=self.status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        reply = self.replies.pop(0)
        head = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        await response.write(f"data: {json.dumps(head)}\n\n".encode())
        for i in range(0, len(reply), 4):
            chunk = {"choices": [{"index": 0, "delta": {"content": reply[i : i + 4]}}]}
            await response.write(f": keep-alive\n\ndata: {json.dumps(chunk)}\n\n".encode())
            if self.hold is not None:
                await self.hold.wait()
        await response.write(b"data: [DONE]\n\n")
        return response


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    state = FakeOpenAI()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", state.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield state, str(server.make_url("/v1"))
    await server.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _runner(
    base_url: str, store: Path, session: aiohttp.ClientSession, turns: int = 20
) -> ChatCompletionsRunner:
    settings = AgentSettings(
        history_turns=turns,
        providers={"openai": ProviderEndpoint(base_url, "sk-test")},
        store_dir=store,
    )
    return ChatCompletionsRunner(settings, session)


def _request(message: str, **kw: Any) -> RunRequest:
    fields: dict[str, Any] = {
        "session_key": "agent:main:voice:15551234567",
        "agent_id": "main",
        "run_id": "voice:c1:1",
        "model": "openai/gpt-4o-mini",
        "system_prompt": "Be brief.",
        "message": message,
        "timeout_ms": 10_000,
    }
    fields.update(kw)
    return RunRequest(**fields)


async def test_streams_a_reply_and_sends_the_openai_shape(
    fake: tuple[FakeOpenAI, str], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The runner posts a streaming request with model, system and user messages and a key."""
    server, base_url = fake
    server.replies.append('{"spoken": "Hello, how can I help?"}')
    deltas: list[str] = []
    result = await _runner(base_url, tmp_path, http).run(
        _request("Hi", on_text_delta=deltas.append)
    )
    assert spoken_reply(result) == "Hello, how can I help?"
    assert "".join(deltas) == '{"spoken": "Hello, how can I help?"}'
    [sent] = server.requests
    assert sent["model"] == "gpt-4o-mini"
    assert sent["stream"] is True
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert server.auth == ["Bearer sk-test"]


async def test_history_is_kept_per_session_and_limited(
    fake: tuple[FakeOpenAI, str], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Later runs send the last historyTurns turns, with the spoken reply, from the JSONL file."""
    server, base_url = fake
    runner = _runner(base_url, tmp_path, http, turns=1)
    server.replies += ['{"spoken": "one"}', '{"spoken": "two"}', '{"spoken": "three"}']
    for text in ("a", "b", "c"):
        await runner.run(_request(text))
    assert server.requests[2]["messages"][1:] == [
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "c"},
    ]
    path = tmp_path / "sessions" / session_file_name("agent:main:voice:15551234567")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["role"], r["content"]) for r in rows][-2:] == [("user", "c"), ("assistant", "three")]
    assert len(rows) == 6


async def test_sessions_do_not_share_history(
    fake: tuple[FakeOpenAI, str], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A different session key starts with no history."""
    server, base_url = fake
    runner = _runner(base_url, tmp_path, http)
    server.replies += ['{"spoken": "x"}', '{"spoken": "y"}']
    await runner.run(_request("first"))
    await runner.run(_request("other", session_key="agent:main:voice:call:abc"))
    assert len(server.requests[1]["messages"]) == 2


async def test_http_error_is_a_call_error(
    fake: tuple[FakeOpenAI, str], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """An HTTP error from the endpoint surfaces as a CallError with the status."""
    server, base_url = fake
    server.status = 401
    with pytest.raises(CallError, match="HTTP 401"):
        await _runner(base_url, tmp_path, http).run(_request("Hi"))
    assert not (tmp_path / "sessions").exists()


async def test_cancel_aborts_the_run(
    fake: tuple[FakeOpenAI, str], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Setting the cancel event mid-stream returns an aborted result and records no turn."""
    server, base_url = fake
    server.hold = asyncio.Event()
    server.replies.append('{"spoken": "a long answer"}')
    request = _request("Hi")
    request.cancel.set()
    task = asyncio.ensure_future(_runner(base_url, tmp_path, http).run(request))
    server.hold.set()
    result = await asyncio.wait_for(task, timeout=10)
    assert result.aborted
    assert not (tmp_path / "sessions").exists()


async def test_unknown_provider_is_a_call_error(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A model on a provider with no endpoint configured fails clearly."""
    runner = _runner("http://127.0.0.1:9/v1", tmp_path, http)
    with pytest.raises(CallError, match=r"agent\.providers\.groq\.baseUrl"):
        await runner.run(_request("Hi", model="groq/llama"))
