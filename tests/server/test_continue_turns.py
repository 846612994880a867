"""`continue` turns through a real Gateway on the mock carrier, driven over raw JSON-RPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from voicecall.agent.types import RunRequest, RunResult
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway
from voicecall.store.reports import latency_report

SCRIPT = [
    "Hello, who is this?",
    "Tuesday works for me.",
    "Around three in the afternoon.",
    "No, that is all, thanks.",
    "Bye now.",
]

# A reply delay wide enough that a second request lands while the mock callee is still silent.
MOCK = {"ringMs": 5, "answerMs": 10, "speechMsPerChar": 0, "replyMs": 1000, "script": SCRIPT}

HEARD: list[str] = []


class SilentRunner:
    """An agent that listens to every caller line and never says anything back."""

    async def run(self, request: RunRequest) -> RunResult:
        HEARD.append(request.message)
        return RunResult(payloads=[])


def make_silent_runner(config: Any) -> SilentRunner:
    """The `agent.runner` factory this test configures."""
    return SilentRunner()


def make_config(tmp_path: Path) -> VoicecallConfig:
    return VoicecallConfig.model_validate(
        {
            "provider": "mock",
            "store": str(tmp_path),
            "serve": {"port": 0},
            "rpc": {"port": 0},
            "mock": MOCK,
            "agent": {"runner": f"python:{__name__}:make_silent_runner"},
        }
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def rpc(http: aiohttp.ClientSession, gateway: Gateway, method: str, **params: Any) -> Any:
    assert gateway.rpc_url is not None
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with http.post(gateway.rpc_url, json=body) as response:
        return await response.json()


async def result_of(
    http: aiohttp.ClientSession, gateway: Gateway, method: str, **params: Any
) -> Any:
    reply = await rpc(http, gateway, method, **params)
    assert "error" not in reply, reply
    return reply["result"]


async def wait_listening(http: aiohttp.ClientSession, gateway: Gateway, call_id: str) -> None:
    """Until the opening line was heard by the agent (who stayed silent) and the call listens."""
    async with asyncio.timeout(30):
        while True:
            status = await result_of(http, gateway, "voicecall.status", callId=call_id)
            if status["call"]["state"] == "listening" and any(SCRIPT[0] in m for m in HEARD):
                return
            await asyncio.sleep(0.02)


async def poll_operation(
    http: aiohttp.ClientSession, gateway: Gateway, operation_id: str
) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            outcome: dict[str, Any] = await result_of(
                http, gateway, "voicecall.continue.result", operationId=operation_id
            )
            if outcome["status"] != "pending":
                return outcome
            await asyncio.sleep(0.02)


def snapshots(tmp_path: Path, call_id: str) -> list[dict[str, Any]]:
    lines = (tmp_path / "calls.jsonl").read_bytes().splitlines()
    return [r for r in map(orjson.loads, lines) if r["callId"] == call_id]


async def test_continue_turns_return_the_callee_lines_and_are_counted_once(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    """Three continue turns return the callee's lines in order and are recorded and counted once."""
    HEARD.clear()
    async with Gateway(make_config(tmp_path), env={}) as gateway:
        placed = await result_of(
            session,
            gateway,
            "voicecall.initiate",
            to="+15550001234",
            message="Hi, this is the clinic.",
            mode="conversation",
        )
        call_id = placed["callId"]
        await wait_listening(session, gateway, call_id)

        transcripts = []
        for question in ("Which day suits you?", "What time?"):
            turn = await result_of(
                session, gateway, "voicecall.continue", callId=call_id, message=question
            )
            assert turn["success"] is True
            transcripts.append(turn["transcript"])

        started = await result_of(
            session, gateway, "voicecall.continue.start", callId=call_id, message="Anything else?"
        )
        assert started["status"] == "pending"
        second = await rpc(session, gateway, "voicecall.continue", callId=call_id, message="Hello?")
        assert second["error"]["message"] == "a turn is already in progress for this call"
        outcome = await poll_operation(session, gateway, started["operationId"])
        assert outcome["status"] == "completed", outcome
        transcripts.append(outcome["result"]["transcript"])

        assert transcripts == SCRIPT[1:4]
        await result_of(session, gateway, "voicecall.end", callId=call_id)

    records = snapshots(tmp_path, call_id)
    last = records[-1]
    continue_turns = [t for t in last["metadata"]["turns"] if t["kind"] == "continue"]
    assert [t["n"] for t in continue_turns] == [1, 2, 3]
    for turn in continue_turns:
        assert isinstance(turn["latencyMs"], int) and turn["latencyMs"] >= 0
        assert (
            isinstance(turn["listenWaitMs"], int) and 0 <= turn["listenWaitMs"] <= turn["latencyMs"]
        )
    metadata = last["metadata"]
    assert metadata["turnCount"] == 3
    assert metadata["lastTurnLatencyMs"] == continue_turns[-1]["latencyMs"]
    assert metadata["lastTurnListenWaitMs"] == continue_turns[-1]["listenWaitMs"]
    assert metadata["lastTurnCompletedAt"] == continue_turns[-1]["completedAt"]
    user_lines = [t["text"] for t in last["transcript"] if t["speaker"] == "user"]
    assert user_lines == SCRIPT[:4]

    assert len(records) > 3  # many snapshots carry the same turns
    report = latency_report(tmp_path / "calls.jsonl")
    assert report["turnLatency"]["count"] == 3
    assert report["listenWait"]["count"] == 3
    assert report["responseLatency"]["count"] == 0
    assert report["turnsCounted"] == 3
