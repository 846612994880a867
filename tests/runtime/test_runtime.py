"""CallRuntime end to end on the offline mock carrier and the real call store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from voicecall.agent import Payload, RunRequest, RunResult
from voicecall.calls.record import CallRecord
from voicecall.calls.turns import REPLY_APOLOGY
from voicecall.carriers.mock.carrier import MockCarrier
from voicecall.config import VoicecallConfig
from voicecall.errors import CallError, StoreError
from voicecall.runtime import CallRuntime
from voicecall.store import CallStore

FAST_MOCK = {"ringMs": 1, "answerMs": 2, "replyMs": 1, "speechMsPerChar": 0}


def config(**overrides: Any) -> VoicecallConfig:
    data: dict[str, Any] = {
        "toNumber": "+15550001111",
        "outbound": {"notifyHangupDelaySec": 0},
        "mock": FAST_MOCK,
    }
    data.update(overrides)
    return VoicecallConfig.model_validate(data)


async def until(predicate: Callable[[], bool], *, attempts: int = 1000) -> None:
    for _ in range(attempts):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


def record_of(runtime: CallRuntime, call_id: str) -> CallRecord:
    record = runtime.get_record(call_id)
    assert record is not None
    return record


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class EchoRunner:
    """An agent that answers every caller message with a fixed JSON reply."""

    def __init__(self) -> None:
        self.requests: list[RunRequest] = []

    async def run(self, request: RunRequest) -> RunResult:
        self.requests.append(request)
        return RunResult(payloads=[Payload(text='{"spoken":"Noted, thank you."}')])


class FailingStore(CallStore):
    """A real store whose writes fail after ``ok_writes`` successes."""

    def __init__(self, path: Path, ok_writes: int) -> None:
        super().__init__(path)
        self.ok_writes = ok_writes

    async def append(self, record: Mapping[str, Any]) -> None:
        if self.ok_writes <= 0:
            raise StoreError("disk full")
        self.ok_writes -= 1
        await super().append(record)


async def test_notify_call_speaks_then_hangs_up(tmp_path: Path) -> None:
    """A notify call plays its message, hangs up as the bot and every step is persisted."""
    cfg = config()
    runtime = CallRuntime(cfg, carrier=MockCarrier(cfg), store=CallStore(tmp_path / "c.jsonl"))
    await runtime.start()
    result = await runtime.initiate(message="Your parcel arrives today.")
    call_id = result["callId"]
    assert result["initiated"] is True
    await until(lambda: record_of(runtime, call_id).ended_at_ms is not None)
    record = record_of(runtime, call_id)
    assert record.end_reason == "hangup-bot"
    assert [e.text for e in record.transcript] == ["Your parcel arrives today."]
    persisted = [r for r in lines(tmp_path / "c.jsonl") if r["callId"] == call_id]
    assert persisted[0]["state"] == "initiated"
    assert persisted[-1]["endReason"] == "hangup-bot"
    assert runtime.active_call_count == 0
    await runtime.stop()


async def test_conversation_call_runs_several_turns(tmp_path: Path) -> None:
    """continue returns each scripted caller line and records per-turn metrics."""
    cfg = config()
    runtime = CallRuntime(cfg, carrier=MockCarrier(cfg), store=CallStore(tmp_path / "c.jsonl"))
    await runtime.start()
    call_id = (await runtime.initiate(mode="conversation"))["callId"]
    # The callee answers the listen that follows the answer first (no agent: nothing said).
    await until(lambda: len(record_of(runtime, call_id).transcript) == 1)
    first = await runtime.continue_call(call_id, "Does 3pm work?")
    second = await runtime.continue_call(call_id, "Three o'clock.")
    assert first == {"success": True, "transcript": "Could you repeat the time?"}
    assert second["transcript"] == "Thanks, goodbye."
    assert await runtime.end_call(call_id) == {"success": True}
    assert await runtime.end_call(call_id) == {"success": True}
    record = record_of(runtime, call_id)
    assert record.metadata["turnCount"] == 2
    assert [t["n"] for t in record.metadata["turns"]] == [1, 2]
    assert runtime.status(call_id)["call"]["endReason"] == "hangup-bot"
    await runtime.stop()


async def test_auto_responder_answers_caller_speech(tmp_path: Path) -> None:
    """Unclaimed caller speech on a conversation call is answered by the agent runner."""
    cfg = config()
    runner = EchoRunner()
    store = CallStore(tmp_path / "c.jsonl")
    runtime = CallRuntime(cfg, carrier=MockCarrier(cfg), store=store, runner=runner)
    await runtime.start()
    started = await runtime.initiate(mode="conversation", message="Hi, it's your assistant.")
    call_id = started["callId"]
    await until(
        lambda: any(e.text == "Noted, thank you." for e in record_of(runtime, call_id).transcript)
    )
    request = runner.requests[0]
    assert request.run_id.startswith(f"voice:{call_id}:")
    assert "Hi, it's your assistant." in request.message
    assert request.message.endswith("Current caller message:\nYes, that works for me.")
    assert request.session_key == "agent:main:voice:15550001111"
    await runtime.end_call(call_id)
    await runtime.stop()


async def test_first_persist_failure_aborts_before_dialling(tmp_path: Path) -> None:
    """If the initiated record cannot be written, initiate fails and nothing is dialled."""
    cfg = config()
    carrier = MockCarrier(cfg)
    runtime = CallRuntime(cfg, carrier=carrier, store=FailingStore(tmp_path / "c.jsonl", 0))
    await runtime.start()
    with pytest.raises(CallError, match="disk full"):
        await runtime.initiate(message="hi")
    assert runtime.active_call_count == 0
    assert list(carrier.commands) == []
    await runtime.stop()


async def test_store_failure_mid_call_is_surfaced_and_the_call_goes_on(tmp_path: Path) -> None:
    """A later write failure shows as store_error while the call still completes."""
    cfg = config()
    store = FailingStore(tmp_path / "c.jsonl", 1)
    runtime = CallRuntime(cfg, carrier=MockCarrier(cfg), store=store)
    await runtime.start()
    call_id = (await runtime.initiate(message="hello"))["callId"]
    await until(lambda: record_of(runtime, call_id).ended_at_ms is not None)
    assert runtime.store_error is not None and "disk full" in runtime.store_error
    assert runtime.status(call_id)["storeError"] == runtime.store_error
    await runtime.stop()


async def test_restart_restores_live_calls_from_the_store(tmp_path: Path) -> None:
    """After stop/start, a live call is restored and a carrier-ended one is finalized."""
    path = tmp_path / "calls.jsonl"
    cfg = config(mock={**FAST_MOCK, "simulate": False})
    runtime = CallRuntime(cfg, carrier=MockCarrier(cfg), store=CallStore(path))
    await runtime.start()
    call_id = (await runtime.initiate(mode="conversation"))["callId"]
    now_ms = time.time_ns() // 1_000_000
    answer = {"type": "call.answered", "id": "a1", "callId": call_id, "timestamp": now_ms}
    await runtime.handle_events([answer])
    await runtime.stop()
    record = lines(path)[-1]
    assert record["state"] in ("answered", "listening")
    ended = dict(record, callId="other", providerCallId="mock-ended-call")
    path.write_text(path.read_text() + json.dumps(ended) + "\n")

    restarted = CallRuntime(cfg, carrier=MockCarrier(cfg), store=CallStore(path))
    await restarted.start()
    await until(lambda: record_of(restarted, "other").ended_at_ms is not None)
    assert record_of(restarted, "other").end_reason == "completed"
    assert record_of(restarted, call_id).ended_at_ms is None
    await restarted.handle_events([answer])  # already processed before the restart
    assert record_of(restarted, call_id).processed_event_ids == ["a1"]
    assert restarted.active_call_count == 1
    await restarted.stop()


async def test_stop_rejects_a_waiting_turn_and_refuses_new_work(tmp_path: Path) -> None:
    """Stopping fails a blocked continue with 'runtime stopped' and later calls fail."""
    cfg = config(mock={**FAST_MOCK, "simulate": False})
    runtime = CallRuntime(cfg, carrier=MockCarrier(cfg), store=CallStore(tmp_path / "c.jsonl"))
    await runtime.start()
    call_id = (await runtime.initiate(mode="conversation"))["callId"]
    turn = asyncio.ensure_future(runtime.continue_call(call_id, "Anyone?"))
    await until(lambda: record_of(runtime, call_id).state.value == "listening")
    await runtime.stop()
    with pytest.raises(CallError, match="voicecall runtime stopped"):
        await turn
    with pytest.raises(CallError, match="voicecall runtime is stopping"):
        await runtime.speak(call_id, "x")


class BrokenModelRunner:
    """An agent whose model endpoint fails every run."""

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, request: RunRequest) -> RunResult:
        self.runs += 1
        raise RuntimeError("upstream model returned 503")


async def test_model_failure_without_a_stream_apologizes_with_carrier_speech(
    tmp_path: Path,
) -> None:
    """No media stream: the apology goes out as carrier-native speech, and the call goes on."""
    cfg = config()
    carrier = MockCarrier(cfg)
    runner = BrokenModelRunner()
    runtime = CallRuntime(
        cfg, carrier=carrier, store=CallStore(tmp_path / "c.jsonl"), runner=runner
    )
    await runtime.start()
    call_id = (await runtime.initiate(mode="conversation", message="Hello."))["callId"]
    await until(lambda: REPLY_APOLOGY in [e.text for e in record_of(runtime, call_id).transcript])
    spoken = [c.args.get("text") for c in carrier.commands if c.name == "playTts"]
    assert REPLY_APOLOGY in spoken
    # The callee's next scripted line is still answered: the call keeps going.
    await until(lambda: runner.runs >= 2)
    record = record_of(runtime, call_id)
    assert record.transcript[1].speaker == "user" and record.transcript[2].text == REPLY_APOLOGY
    await runtime.end_call(call_id)
    await runtime.stop()
