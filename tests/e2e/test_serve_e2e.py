"""`voicecall serve` as a subprocess: calls over CLI and raw RPC, crash recovery, clean SIGTERM."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import DEADLINE_S, SyncGateway

pytestmark = pytest.mark.e2e

FAST_MOCK = {"ringMs": 5, "answerMs": 20, "speechMsPerChar": 1, "replyMs": 20}


def gateway_for(home: Path, mock: dict[str, Any]) -> SyncGateway:
    """A `voicecall serve` child on the mock carrier."""
    config = {"provider": "mock", "mock": mock, "outbound": {"notifyHangupDelaySec": 0}}
    return SyncGateway(home, config, webhook=False)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[SyncGateway]:
    gateway = gateway_for(tmp_path, FAST_MOCK)
    gateway.start()
    yield gateway
    gateway.close()


def test_calls_over_cli_and_rpc_then_clean_sigterm(served: SyncGateway) -> None:
    """Notify and conversation calls complete via CLI and RPC; SIGTERM exits 0."""
    placed = served.cli("call", "--to", "+15550001234", "--message", "Hi", "--mode", "notify")
    assert placed.returncode == 0, placed.stderr
    notify_id = json.loads(placed.stdout)["callId"]
    conv = served.rpc(
        "voicecall.initiate", to="+15550001234", message="Hello", mode="conversation"
    )["result"]["callId"]
    assert served.wait_ended(notify_id)["endReason"] == "hangup-bot"
    assert served.wait_ended(conv)["endReason"] == "hangup-user"
    status = served.cli("status", "--call-id", conv, "--json")
    assert json.loads(status.stdout)["call"]["state"] == "hangup-user"
    latency = served.cli("latency", "--json")
    assert json.loads(latency.stdout)["turnsCounted"] == 3
    assert served.stop() == 0
    ids = {r["callId"] for r in served.records()}
    assert {notify_id, conv} <= ids


def test_401_does_not_fall_back(tmp_path: Path) -> None:
    """A CLI with the wrong token gets exit 1 and the rpc.token hint, no standalone run."""
    gateway = gateway_for(tmp_path, FAST_MOCK)
    config = json.loads((tmp_path / "config.json5").read_text())
    config["rpc"]["token"] = "right"
    (tmp_path / "config.json5").write_text(json.dumps(config))
    gateway.start()
    try:
        config["rpc"]["token"] = "wrong"
        other = tmp_path / "client.json5"
        other.write_text(json.dumps(config))
        result = gateway.cli("--config", str(other), "end", "--call-id", "x")
        assert result.returncode == 1
        assert "error: Unauthorized" in result.stderr
        assert "hint: check rpc.token" in result.stderr
    finally:
        assert gateway.stop() == 0


def test_sigkill_mid_call_then_restart_recovers(tmp_path: Path) -> None:
    """After SIGKILL mid-call, every record line is whole and a restart ends or keeps the call."""
    slow = {**FAST_MOCK, "replyMs": 2000, "script": ["One.", "Two.", "Three."]}
    gateway = gateway_for(tmp_path, slow)
    gateway.start()
    call_id = gateway.rpc(
        "voicecall.initiate", to="+15550001234", message="Hello", mode="conversation"
    )["result"]["callId"]
    deadline = time.monotonic() + DEADLINE_S
    while gateway.rpc("voicecall.status", callId=call_id)["result"]["call"]["state"] not in (
        "listening",
        "active",
        "answered",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    gateway.stop(signal.SIGKILL)
    before = gateway.records()
    assert before and all(r.get("callId") for r in before)
    gateway.start()
    try:
        call = gateway.rpc("voicecall.status", callId=call_id)["result"]["call"]
        assert call["callId"] == call_id
        if not call.get("endedAt"):
            assert gateway.rpc("voicecall.end", callId=call_id)["result"] == {"success": True}
        assert gateway.wait_ended(call_id)["endedAt"]
    finally:
        assert gateway.stop() == 0
    after = gateway.records()
    assert after[: len(before)] == before
