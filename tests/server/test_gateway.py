"""A real Gateway (mock carrier, ephemeral ports) driven through raw JSON-RPC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from voicecall.config import VoicecallConfig
from voicecall.errors import ConfigError
from voicecall.gateway import Gateway
from voicecall.store.latency import latency_report

FAST_MOCK = {"ringMs": 5, "answerMs": 10, "speechMsPerChar": 0, "replyMs": 10}


def make_config(tmp_path: Path, **overrides: Any) -> VoicecallConfig:
    raw: dict[str, Any] = {
        "provider": "mock",
        "store": str(tmp_path),
        "serve": {"port": 0},
        "rpc": {"port": 0},
        "mock": FAST_MOCK,
        "outbound": {"notifyHangupDelaySec": 0},
    }
    raw.update(overrides)
    return VoicecallConfig.model_validate(raw)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def rpc(http: aiohttp.ClientSession, gateway: Gateway, method: str, **params: Any) -> Any:
    assert gateway.rpc_url is not None
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with http.post(gateway.rpc_url, json=body) as response:
        return await response.json()


async def wait_ended(http: aiohttp.ClientSession, gateway: Gateway, call_id: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        return await _poll_ended(http, gateway, call_id)


async def _poll_ended(
    http: aiohttp.ClientSession, gateway: Gateway, call_id: str
) -> dict[str, Any]:
    while True:
        status = await rpc(http, gateway, "voicecall.status", callId=call_id)
        call: dict[str, Any] = status["result"]["call"]
        if call.get("endedAt"):
            return call
        await asyncio.sleep(0.02)


def records(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "calls.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


async def test_notify_call_runs_to_hangup_bot_and_is_on_disk(tmp_path, session) -> None:
    """A notify call placed over RPC plays its message, hangs up, and is persisted."""
    async with Gateway(make_config(tmp_path), env={}) as gateway:
        placed = await rpc(
            session,
            gateway,
            "voicecall.initiate",
            to="+15550001234",
            message="Your package arrived",
            mode="notify",
        )
        call_id = placed["result"]["callId"]
        assert placed["result"]["initiated"] is True
        call = await wait_ended(session, gateway, call_id)
        assert call["endReason"] == "hangup-bot"
    snapshots = [r for r in records(tmp_path) if r["callId"] == call_id]
    assert snapshots[-1]["state"] == "hangup-bot"
    assert snapshots[-1]["transcript"][0]["text"] == "Your package arrived"


async def test_conversation_call_runs_every_turn_and_reports_latency(tmp_path, session) -> None:
    """A conversation call answers each scripted line and records per-turn response times."""
    async with Gateway(make_config(tmp_path), env={}) as gateway:
        placed = await rpc(
            session,
            gateway,
            "voicecall.initiate",
            to="+15550001234",
            message="Hello",
            mode="conversation",
        )
        call_id = placed["result"]["callId"]
        call = await wait_ended(session, gateway, call_id)
        assert call["endReason"] == "hangup-user"
    last = [r for r in records(tmp_path) if r["callId"] == call_id][-1]
    user_lines = [t["text"] for t in last["transcript"] if t["speaker"] == "user"]
    assert user_lines == [
        "Yes, that works for me.",
        "Could you repeat the time?",
        "Thanks, goodbye.",
    ]
    assert [t["n"] for t in last["metadata"]["turns"]] == [1, 2, 3]
    report = latency_report(tmp_path / "calls.jsonl")
    assert report["turnsCounted"] == 3
    assert report["responseLatency"]["count"] == 3


async def test_healthz_and_metrics_reflect_calls(tmp_path, session) -> None:
    """/healthz reports the provider and /metrics counts started and ended calls."""
    async with Gateway(make_config(tmp_path), env={}) as gateway:
        base = gateway.control_url
        async with session.get(f"{base}/healthz") as response:
            health = await response.json()
        assert response.status == 200
        assert health["provider"] == "mock"
        assert health["store"] == "ok"
        placed = await rpc(
            session, gateway, "voicecall.initiate", to="+15550001234", message="Hi", mode="notify"
        )
        await wait_ended(session, gateway, placed["result"]["callId"])
        async with session.get(f"{base}/metrics") as response:
            text = await response.text()
    assert 'voicecall_calls_started_total{direction="outbound",provider="mock"} 1.0' in text
    assert 'voicecall_calls_ended_total{provider="mock",reason="hangup-bot"} 1.0' in text


async def test_control_routes_are_not_served_on_the_webhook_port(tmp_path, session) -> None:
    """The webhook listener answers 404 for /rpc, /healthz and /metrics."""
    async with Gateway(make_config(tmp_path), env={}) as gateway:
        assert gateway.webhook_url is not None
        base = gateway.webhook_url.rsplit("/voice/webhook", 1)[0]
        for path in ("/rpc", "/healthz", "/metrics"):
            async with session.get(base + path) as response:
                assert response.status == 404


async def test_webhook_events_drive_an_inbound_call(tmp_path, session) -> None:
    """Posting mock events to the webhook reaches the runtime (inbound policy rejects)."""
    async with Gateway(make_config(tmp_path), env={}) as gateway:
        assert gateway.webhook_url is not None
        event = {
            "type": "call.initiated",
            "providerCallId": "mock-in-1",
            "direction": "inbound",
            "from": "+15550007777",
            "to": "+15550000000",
        }
        async with session.post(gateway.webhook_url, json={"event": event}) as response:
            assert response.status == 200
    rejected = [r for r in records(tmp_path) if r.get("providerCallId") == "mock-in-1"]
    assert rejected[-1]["metadata"]["rejectionReason"] == "inbound-policy"


async def test_disabled_config_serves_only_control_listener(tmp_path, session) -> None:
    """enabled:false keeps the control listener; RPC says voice calls are disabled."""
    async with Gateway(make_config(tmp_path, enabled=False), env={}) as gateway:
        assert gateway.webhook_url is None
        reply = await rpc(session, gateway, "voicecall.status")
        assert reply["error"]["message"] == "voice calls are disabled"
        async with session.get(f"{gateway.control_url}/healthz") as response:
            assert response.status == 503


async def test_setup_incomplete_answers_with_the_setup_text(tmp_path, session) -> None:
    """Missing carrier credentials: /healthz is 503 and RPC returns the setup-incomplete text."""
    config = make_config(tmp_path, provider="twilio", fromNumber="+15550000000")
    async with Gateway(config, env={}) as gateway:
        reply = await rpc(session, gateway, "voicecall.initiate", message="hi")
        message = reply["error"]["message"]
        assert message.startswith("voice call runtime not started: setup incomplete: ")
        assert "twilio.accountSid is required" in message
        async with session.get(f"{gateway.control_url}/healthz") as response:
            assert response.status == 503
            assert (await response.json())["error"] == message


async def test_non_loopback_rpc_without_token_refuses_to_start(tmp_path) -> None:
    """rpc.bind 0.0.0.0 without rpc.token is a clear error."""
    config = make_config(tmp_path)
    config.rpc.bind = "0.0.0.0"
    with pytest.raises(ConfigError, match=r"rpc\.token is required"):
        await Gateway(config, env={}).start()


async def test_busy_webhook_port_names_the_cause(tmp_path) -> None:
    """A second gateway on the same webhook port fails with the port-in-use message."""
    async with Gateway(make_config(tmp_path), env={}) as first:
        assert first.webhook_url is not None
        port = int(first.webhook_url.split(":")[2].split("/")[0])
        second = Gateway(make_config(tmp_path, serve={"port": port}), env={})
        with pytest.raises(ConfigError, match=f"webhook port {port} is already in use"):
            await second.start()


async def test_restart_after_stop_and_reload(tmp_path, session) -> None:
    """A gateway can start again after stop, and reload swaps the runtime."""
    gateway = Gateway(make_config(tmp_path), env={})
    await gateway.start()
    await gateway.stop()
    await gateway.start()
    old_runtime = gateway.runtime

    class Loaded:
        config = make_config(tmp_path)
        enabled = True

    await gateway.reload(Loaded())
    assert gateway.runtime is not None and gateway.runtime is not old_runtime
    reply = await rpc(session, gateway, "voicecall.status")
    assert reply["result"]["found"] is True
    await gateway.stop()


@pytest.mark.parametrize("fsync", [True, False])
async def test_store_fsync_setting_reaches_the_store(
    tmp_path: Path, session: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    """With storeFsync true every call record is fsynced to disk; with false, none is."""
    import os

    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    async with Gateway(make_config(tmp_path, storeFsync=fsync), env={}) as gateway:
        placed = await rpc(
            session, gateway, "voicecall.initiate", to="+15550001234", message="Hi", mode="notify"
        )
        await wait_ended(session, gateway, placed["result"]["callId"])
    lines = len(records(tmp_path))
    assert lines > 0
    assert (len(synced) >= lines) if fsync else (synced == [])


async def test_stop_closes_the_runner_it_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner the gateway loaded itself (its HTTP clients) is closed when the gateway stops."""
    from voicecall import agent

    closed: list[bool] = []

    class ClosableRunner:
        async def run(self, request: Any) -> Any:
            raise AssertionError("not called in this test")

        async def aclose(self) -> None:
            closed.append(True)

    monkeypatch.setattr(agent, "load_runner", lambda *args, **kwargs: ClosableRunner())
    async with Gateway(make_config(tmp_path), env={}):
        assert closed == []
    assert closed == [True]
