"""One `voicecall serve` child for the e2e tests: ports, config, health, JSON-RPC, calls.jsonl."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

__all__ = ["DEADLINE_S", "Gateway", "SyncGateway", "free_port", "until"]

DEADLINE_S = 30.0
_POLL_S = 0.05
_SERVE = [sys.executable, "-m", "voicecall.cli", "serve"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(predicate: Callable[[], object], timeout_s: float = DEADLINE_S) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


def _rpc_body(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


class _Served:
    """A gateway's home: its config.json5 on free ports, its environment, log and calls.jsonl."""

    def __init__(
        self,
        home: Path,
        config: dict[str, Any],
        *,
        webhook: bool = True,
        unset_env: Iterable[str] = (),
    ) -> None:
        """Write `config` plus the serve/rpc ports (and, with `webhook`, a reachable publicUrl)."""
        self.home = home
        self.rpc_port = free_port()
        serve_port = free_port()
        self.webhook_url = f"http://127.0.0.1:{serve_port}/voice/webhook"
        ports: dict[str, Any] = {"serve": {"port": serve_port}, "rpc": {"port": self.rpc_port}}
        if webhook:
            ports |= {
                "publicUrl": self.webhook_url,
                "webhookSecurity": {"allowPrivateWebhookUrl": True},
            }
        (home / "config.json5").write_text(json.dumps({**ports, **config}))
        self.env = {**os.environ, "VOICECALL_HOME": str(home)}
        for name in ("VOICECALL_CONFIG", *unset_env):
            self.env.pop(name, None)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    def log(self) -> str:
        return (self.home / "serve.log").read_text(errors="replace")

    def lines(self) -> list[str]:
        """The complete (newline-terminated) lines of calls.jsonl."""
        path = self.home / "calls.jsonl"
        return path.read_text().split("\n")[:-1] if path.exists() else []

    def records(self) -> list[dict[str, Any]]:
        """Every line of calls.jsonl, a line cut short included (it fails to parse)."""
        path = self.home / "calls.jsonl"
        raw = path.read_bytes() if path.exists() else b""
        return [json.loads(line) for line in raw.split(b"\n") if line.strip()]

    def last_record(self, call_id: str, key: str = "callId") -> dict[str, Any]:
        """The latest persisted snapshot whose `key` is `call_id`, or {} before the first."""
        mine = [r for r in map(json.loads, self.lines()) if r.get(key) == call_id]
        return mine[-1] if mine else {}


class Gateway(_Served):
    """`voicecall serve` as an asyncio child; a restart keeps its ports and home."""

    process: asyncio.subprocess.Process | None = None
    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def start(self) -> None:
        """Spawn the child and wait until /healthz answers 200."""
        with open(self.home / "serve.log", "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *_SERVE, env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=log
            )
        async with asyncio.timeout(DEADLINE_S):
            while True:
                try:
                    async with self.session.get(f"{self.base_url}/healthz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                assert self.process.returncode is None, self.log()
                await asyncio.sleep(_POLL_S)

    async def rpc(self, method: str, **params: Any) -> Any:
        """The JSON-RPC result; an error reply fails the test."""
        async with self.session.post(
            f"{self.base_url}/rpc",
            json=_rpc_body(method, params),
            timeout=aiohttp.ClientTimeout(60),
        ) as response:
            reply: dict[str, Any] = await response.json()
        assert "result" in reply, (reply, self.log())
        return reply["result"]

    async def call(self, call_id: str) -> dict[str, Any]:
        """The call as `voicecall.status` reports it (from the gateway's memory)."""
        status: dict[str, Any] = (await self.rpc("voicecall.status", callId=call_id))["call"]
        return status

    async def wait_call(self, call_id: str, key: str) -> dict[str, Any]:
        """The call once its status carries a truthy `key` (e.g. answeredAt, endedAt)."""
        async with asyncio.timeout(DEADLINE_S):
            while not (call := await self.call(call_id)).get(key):
                await asyncio.sleep(_POLL_S)
        return call

    async def wait_record(
        self,
        call_id: str,
        predicate: Callable[[dict[str, Any]], object],
        key: str = "callId",
    ) -> dict[str, Any]:
        """The latest persisted snapshot of the call, once it satisfies `predicate`."""
        async with asyncio.timeout(DEADLINE_S):
            while not ((record := self.last_record(call_id, key)) and predicate(record)):
                await asyncio.sleep(_POLL_S)
        return record

    async def ended(self, call_id: str) -> dict[str, Any]:
        """The call's last persisted record, once it has ended (in memory and on disk)."""
        await self.wait_call(call_id, "endedAt")
        # the gateway answers status from memory; the final snapshot reaches disk right after
        return await self.wait_record(call_id, lambda r: r.get("endedAt"))

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM the child (if still running) and return its exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE_S):
            return await self.process.wait()

    async def aclose(self) -> None:
        """Stop the child however it is (SIGTERM, then SIGKILL) and close the HTTP session."""
        if self.process is not None and self.process.returncode is None:
            try:
                await self.stop()
            except TimeoutError:
                await self.kill()
        if self._session is not None:
            await self._session.close()


class SyncGateway(_Served):
    """`voicecall serve` as a plain child for tests without an event loop; RPC by urllib."""

    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn the child and wait until /healthz answers 200."""
        with open(self.home / "serve.log", "ab") as log:
            self.process = subprocess.Popen(
                _SERVE, env=self.env, stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base_url}/healthz") as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(_POLL_S)
        raise AssertionError(f"gateway did not become healthy:\n{self.log()}")

    def rpc(self, method: str, **params: Any) -> dict[str, Any]:
        """The whole JSON-RPC reply, an error reply included."""
        request = urllib.request.Request(
            f"{self.base_url}/rpc",
            data=json.dumps(_rpc_body(method, params)).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            reply: dict[str, Any] = json.loads(response.read())
            return reply

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the `voicecall` CLI against this gateway's home."""
        return subprocess.run(
            [sys.executable, "-m", "voicecall.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def wait_ended(self, call_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            call: dict[str, Any] = self.rpc("voicecall.status", callId=call_id)["result"]["call"]
            if call.get("endedAt"):
                return call
            time.sleep(_POLL_S)
        raise AssertionError(f"call {call_id} did not end")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the child (if still running) and return its exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=DEADLINE_S)

    def close(self) -> None:
        """Kill the child if a test left it running."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
