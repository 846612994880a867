"""`voicecall serve` as a subprocess: calls over CLI and raw RPC, crash recovery, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

FAST_MOCK = {"ringMs": 5, "answerMs": 20, "speechMsPerChar": 1, "replyMs": 20}
_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A running `voicecall serve` child with its home directory and ports."""

    def __init__(self, home: Path, mock: dict[str, Any]) -> None:
        self.home = home
        self.rpc_port = free_port()
        config = {
            "provider": "mock",
            "serve": {"port": free_port()},
            "rpc": {"port": self.rpc_port},
            "mock": mock,
            "outbound": {"notifyHangupDelaySec": 0},
        }
        (home / "config.json5").write_text(json.dumps(config))
        self.env = {**os.environ, "VOICECALL_HOME": str(home)}
        self.env.pop("VOICECALL_CONFIG", None)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.home / "serve.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voicecall.cli", "serve"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + _DEADLINE_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.rpc_port}/healthz") as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise AssertionError("gateway did not become healthy")

    def rpc(self, method: str, **params: Any) -> dict[str, Any]:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.rpc_port}/rpc",
            data=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            reply: dict[str, Any] = json.loads(response.read())
            return reply

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voicecall.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def wait_ended(self, call_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + _DEADLINE_S
        while time.monotonic() < deadline:
            call: dict[str, Any] = self.rpc("voicecall.status", callId=call_id)["result"]["call"]
            if call.get("endedAt"):
                return call
            time.sleep(0.05)
        raise AssertionError(f"call {call_id} did not end")

    def records(self) -> list[dict[str, Any]]:
        raw = (self.home / "calls.jsonl").read_bytes()
        return [json.loads(line) for line in raw.split(b"\n") if line.strip()]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=_DEADLINE_S)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    gateway = Served(tmp_path, FAST_MOCK)
    gateway.start()
    yield gateway
    if gateway.process is not None and gateway.process.poll() is None:
        gateway.process.kill()
        gateway.process.wait()


def test_calls_over_cli_and_rpc_then_clean_sigterm(served: Served) -> None:
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
    gateway = Served(tmp_path, FAST_MOCK)
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
    gateway = Served(tmp_path, slow)
    gateway.start()
    call_id = gateway.rpc(
        "voicecall.initiate", to="+15550001234", message="Hello", mode="conversation"
    )["result"]["callId"]
    deadline = time.monotonic() + _DEADLINE_S
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
