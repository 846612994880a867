"""The builtin runner (openai SDK) against a local fake OpenAI-compatible chat server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.openai_chat import API_KEY, FakeOpenAIChat

from voicecall.agent import (
    AgentSettings,
    ChatCompletionsRunner,
    ProviderEndpoint,
    RunRequest,
    spoken_reply,
)
from voicecall.agent.history import session_file_name
from voicecall.calls.session_keys import SessionScope, session_key_for_call
from voicecall.errors import CallError, ConfigError

PHONE_KEY = "agent:main:voice:15551234567"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIChat]:
    async with FakeOpenAIChat() as server:
        yield server
    assert server.problems == []


@pytest.fixture
async def runners() -> AsyncIterator[list[ChatCompletionsRunner]]:
    made: list[ChatCompletionsRunner] = []
    yield made
    for runner in made:
        await runner.aclose()


def _runner(
    made: list[ChatCompletionsRunner],
    base_url: str,
    store: Path,
    *,
    turns: int = 20,
    default_model: str = "openai/gpt-4o-mini",
    providers: dict[str, ProviderEndpoint] | None = None,
) -> ChatCompletionsRunner:
    settings = AgentSettings(
        default_model=default_model,
        history_turns=turns,
        providers=providers or {"openai": ProviderEndpoint(base_url, API_KEY)},
        store_dir=store,
    )
    runner = ChatCompletionsRunner(settings)
    made.append(runner)
    return runner


def _request(message: str, **kw: Any) -> RunRequest:
    fields: dict[str, Any] = {
        "session_key": PHONE_KEY,
        "agent_id": "main",
        "run_id": "voice:c1:1",
        "model": "openai/gpt-4o-mini",
        "system_prompt": "Be brief.",
        "message": message,
        "timeout_ms": 10_000,
    }
    fields.update(kw)
    return RunRequest(**fields)


def _history_file(store: Path, key: str) -> Path:
    return store / "sessions" / session_file_name(key)


async def test_streams_a_reply_and_sends_the_openai_shape(
    fake: FakeOpenAIChat, runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """The runner posts model, system + user messages and stream: true with the bearer key."""
    reply = '{"spoken": "Hello, how can I help?"}'
    fake.replies.append(reply)
    deltas: list[str] = []
    result = await _runner(runners, fake.base_url, tmp_path).run(
        _request("Hi", on_text_delta=deltas.append)
    )
    assert spoken_reply(result) == "Hello, how can I help?"
    assert deltas == [reply[i : i + 4] for i in range(0, len(reply), 4)]
    [sent] = fake.requests
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["stream"] is True
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"


async def test_extra_system_prompt_follows_the_system_prompt(
    fake: FakeOpenAIChat, runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """An extra system prompt is appended to the system message after a blank line."""
    fake.replies.append('{"spoken": "ok"}')
    await _runner(runners, fake.base_url, tmp_path).run(
        _request("Hi", extra_system_prompt="Speak French.")
    )
    assert fake.bodies[0]["messages"][0] == {
        "role": "system",
        "content": "Be brief.\n\nSpeak French.",
    }


async def test_bare_model_goes_to_the_default_models_provider_without_a_key(
    runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """A bare model runs on agent.defaultModel's provider; a keyless endpoint gets no auth."""
    async with FakeOpenAIChat(api_key=None, replies=['{"spoken": "hi"}']) as local:
        runner = _runner(
            runners,
            local.base_url,
            tmp_path,
            default_model="local/llama3",
            providers={"local": ProviderEndpoint(local.base_url)},
        )
        result = await runner.run(_request("Hi", model="qwen2"))
    assert spoken_reply(result) == "hi"
    assert local.bodies[0]["model"] == "qwen2"
    assert "Authorization" not in local.requests[0].headers
    assert local.problems == []


async def test_history_is_kept_per_session_and_limited(
    fake: FakeOpenAIChat, runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """Later runs send the last historyTurns turns, with the spoken reply, from the JSONL file."""
    runner = _runner(runners, fake.base_url, tmp_path, turns=1)
    fake.replies += ['{"spoken": "one"}', '{"spoken": "two"}', '{"spoken": "three"}']
    for text in ("a", "b", "c"):
        await runner.run(_request(text))
    assert fake.bodies[2]["messages"][1:] == [
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "c"},
    ]
    rows = [
        json.loads(line) for line in _history_file(tmp_path, PHONE_KEY).read_text().splitlines()
    ]
    assert [(r["role"], r["content"]) for r in rows][-2:] == [("user", "c"), ("assistant", "three")]
    assert len(rows) == 6


def _call_key(scope: SessionScope, call_id: str, number: str) -> str:
    return session_key_for_call(agent_id="main", call_id=call_id, remote_number=number, scope=scope)


@pytest.mark.parametrize(
    ("scope", "second_number", "remembers"),
    [
        ("per-phone", "+1 (555) 123-4567", True),
        ("per-phone", "+15550000000", False),
        ("per-call", "+15551234567", False),
        ("main", "+15550000000", True),
    ],
)
async def test_memory_follows_the_session_scope_across_a_restart(
    fake: FakeOpenAIChat,
    runners: list[ChatCompletionsRunner],
    tmp_path: Path,
    scope: SessionScope,
    second_number: str,
    remembers: bool,
) -> None:
    """A second call after a restart sees the first call's turns exactly when its scope shares."""
    fake.replies += ['{"spoken": "Nice to meet you, Ada."}', '{"spoken": "You are Ada."}']
    first = _runner(runners, fake.base_url, tmp_path)
    await first.run(_request("I am Ada.", session_key=_call_key(scope, "call-1", "+15551234567")))
    await first.aclose()
    restarted = _runner(runners, fake.base_url, tmp_path)
    await restarted.run(
        _request("Who am I?", session_key=_call_key(scope, "call-2", second_number))
    )
    earlier = [
        {"role": "user", "content": "I am Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
    ]
    expected = [
        {"role": "system", "content": "Be brief."},
        *(earlier if remembers else []),
        {"role": "user", "content": "Who am I?"},
    ]
    assert fake.bodies[1]["messages"] == expected


async def test_http_error_is_a_call_error_and_records_nothing(
    fake: FakeOpenAIChat, runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """An HTTP error from the endpoint surfaces as a CallError with the status and message."""
    fake.fail_status = 500
    with pytest.raises(CallError, match=r"HTTP 500: .*The server had an error"):
        await _runner(runners, fake.base_url, tmp_path).run(_request("Hi"))
    assert not (tmp_path / "sessions").exists()


async def test_a_rejected_key_is_a_call_error(
    fake: FakeOpenAIChat, runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """A wrong API key surfaces as a CallError naming HTTP 401."""
    runner = _runner(
        runners,
        fake.base_url,
        tmp_path,
        providers={"openai": ProviderEndpoint(fake.base_url, "sk-wrong")},
    )
    with pytest.raises(CallError, match="HTTP 401"):
        await runner.run(_request("Hi"))


async def test_an_error_event_mid_stream_is_a_call_error(
    fake: FakeOpenAIChat, runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """An error event inside the stream fails the run with the provider's message."""
    fake.replies.append('{"spoken": "a long answer"}')
    fake.error_after_chunks = 2
    with pytest.raises(CallError, match="model overloaded"):
        await _runner(runners, fake.base_url, tmp_path).run(_request("Hi"))
    assert not (tmp_path / "sessions").exists()


async def test_a_stalled_stream_times_out_clearly(
    fake: FakeOpenAIChat, runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """A server that never sends a chunk fails the run after responseTimeoutMs."""
    fake.stall = True
    with pytest.raises(CallError, match=r"timed out \(200 ms\)"):
        await _runner(runners, fake.base_url, tmp_path).run(_request("Hi", timeout_ms=200))


async def test_unreachable_endpoint_is_a_call_error(
    runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """A refused connection fails the run as unreachable."""
    with pytest.raises(CallError, match="unreachable"):
        await _runner(runners, "http://127.0.0.1:9/v1", tmp_path).run(_request("Hi"))


async def test_cancel_mid_stream_aborts_the_run(
    fake: FakeOpenAIChat, runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """Setting the cancel event mid-stream returns an aborted result and records no turn."""
    fake.gate.clear()
    fake.replies.append('{"spoken": "a long answer"}')
    deltas: list[str] = []
    request = _request("Hi", on_text_delta=deltas.append)
    task = asyncio.ensure_future(_runner(runners, fake.base_url, tmp_path).run(request))
    await fake.first_chunk_sent.wait()
    request.cancel.set()
    fake.gate.set()
    result = await asyncio.wait_for(task, timeout=10)
    assert result.aborted
    assert "".join(deltas) != '{"spoken": "a long answer"}'
    assert not (tmp_path / "sessions").exists()


async def test_unknown_provider_is_a_call_error(
    runners: list[ChatCompletionsRunner], tmp_path: Path
) -> None:
    """A model on a provider with no endpoint configured fails clearly."""
    runner = _runner(runners, "http://127.0.0.1:9/v1", tmp_path)
    with pytest.raises(CallError, match=r"agent\.providers\.groq\.baseUrl"):
        await runner.run(_request("Hi", model="groq/llama"))


def test_missing_openai_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the openai package the builtin runner fails with the pip extra to install."""
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ConfigError, match=r"pip install 'voicecall\[openai\]'"):
        ChatCompletionsRunner(AgentSettings(store_dir=tmp_path))
