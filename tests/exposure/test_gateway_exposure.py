"""The Gateway's §4.7 start order: webhook server, tunnel, Tailscale, public-URL rule, cleanup."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from tests.exposure.conftest import FakeTools, alive

from voicecall.carriers import CARRIERS, CarrierEntry
from voicecall.config import VoicecallConfig
from voicecall.exposure import ExposureError
from voicecall.gateway import Gateway
from voicecall.runtime import CallRuntime

SETUP_INCOMPLETE = "voice call runtime not started: setup incomplete: "
TWILIO = {
    "provider": "twilio",
    "fromNumber": "+15550001111",
    "twilio": {"accountSid": "AC" + "0" * 32, "authToken": "secret"},
}


def make_config(tmp_path: Path, **overrides: Any) -> VoicecallConfig:
    raw: dict[str, Any] = {
        "provider": "mock",
        "store": str(tmp_path / "store"),
        "serve": {"port": 0},
        "rpc": {"port": 0},
    }
    raw.update(overrides)
    return VoicecallConfig.model_validate(raw)


@pytest.fixture
def twilio_on_mock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Provider "twilio" is served by the mock carrier class: these tests are about start order,
    not about Twilio's REST API."""
    monkeypatch.setitem(
        CARRIERS, "twilio", CarrierEntry("voicecall.carriers.mock.carrier", "MockCarrier")
    )


def failing_runtime(config: VoicecallConfig, **parts: Any) -> CallRuntime:
    """A real runtime whose start (store restore onwards) fails."""
    runtime = CallRuntime(config, **parts)

    async def start() -> None:
        raise RuntimeError("store restore failed")

    runtime.start = start  # type: ignore[method-assign]
    return runtime


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_private_url_for_a_real_carrier_is_setup_incomplete(
    tmp_path: Path, twilio_on_mock: None
) -> None:
    """A real carrier with only the local listener URL is refused with the §4.6 text."""
    gateway = Gateway(make_config(tmp_path, **TWILIO), control=False, env={})
    await gateway.start()
    try:
        assert gateway.unavailable is not None
        assert gateway.unavailable.startswith(SETUP_INCOMPLETE + "webhook URL http://127.0.0.1:")
        assert gateway.unavailable.endswith(
            "/voice/webhook points at a local or private address; carriers cannot reach it."
            " Set publicUrl to a public https URL or configure tunnel/tailscale"
        )
        assert gateway.webhook_url is None
        assert gateway.local_webhook_url is None
        status, body = gateway.health()
        assert (status, body["error"]) == (503, gateway.unavailable)
    finally:
        await gateway.stop()
        await gateway.stop()


async def test_allow_private_webhook_url_starts_on_the_local_url(
    tmp_path: Path, twilio_on_mock: None, caplog: pytest.LogCaptureFixture
) -> None:
    """allowPrivateWebhookUrl lets a real carrier run on the local URL, with a warning."""
    config = make_config(tmp_path, **TWILIO, webhookSecurity={"allowPrivateWebhookUrl": True})
    async with Gateway(config, control=False, env={}) as gateway:
        assert gateway.unavailable is None
        assert gateway.webhook_url is not None
        assert gateway.webhook_url == gateway.local_webhook_url
        assert f"carriers get the private webhook URL {gateway.webhook_url}" in caplog.text


async def test_public_url_is_given_to_carriers(tmp_path: Path, twilio_on_mock: None) -> None:
    """With a public publicUrl the runtime starts and webhook_url is publicUrl."""
    config = make_config(tmp_path, **TWILIO, publicUrl="https://voice.example.com/voice/webhook")
    async with Gateway(config, control=False, env={}) as gateway:
        assert gateway.unavailable is None
        assert gateway.webhook_url == "https://voice.example.com/voice/webhook"
        assert gateway.local_webhook_url is not None


async def test_ngrok_url_and_kill_on_stop(tmp_path: Path, tools: FakeTools) -> None:
    """ngrok is pointed at the bound webhook port, its URL + serve.path is the webhook URL, and
    the carrier is handed that URL; a second start keeps it; stop() kills ngrok; start after stop
    spawns a new tunnel."""
    config = make_config(tmp_path, tunnel={"provider": "ngrok", "ngrokAuthToken": "tok_1"})
    gateway = Gateway(config, control=False)
    await gateway.start()
    assert gateway.webhook_url == "https://a1b2-203-0-113-7.ngrok-free.app/voice/webhook"
    assert gateway._carrier.context.webhook_url == gateway.webhook_url
    url = gateway.webhook_url
    await gateway.start()
    assert gateway.webhook_url == url
    assert gateway.local_webhook_url is not None
    [run] = tools.runs("ngrok")
    assert gateway.local_webhook_url.endswith(f":{run['argv'][1]}/voice/webhook")
    assert run["token"] == "tok_1"
    await gateway.stop()
    assert not alive(run["pid"])
    assert gateway.webhook_url is None
    await gateway.start()
    await gateway.stop()
    assert len(tools.runs("ngrok")) == 2


async def test_failure_after_the_tunnel_stops_tunnel_and_listener(
    tmp_path: Path, tools: FakeTools
) -> None:
    """When the runtime fails to start, ngrok is killed and the webhook port is closed."""
    config = make_config(tmp_path, tunnel={"provider": "ngrok"})
    gateway = Gateway(config, control=False, runtime_factory=failing_runtime)
    with pytest.raises(RuntimeError, match="store restore failed"):
        await gateway.start()
    [run] = tools.runs("ngrok")
    assert not alive(run["pid"])
    assert refuses_connections(int(run["argv"][1]))
    assert gateway.webhook_url is None
    await gateway.stop()


async def test_failure_after_tailscale_unmounts_its_routes(
    tmp_path: Path, tools: FakeTools
) -> None:
    """When the runtime fails after Tailscale mounted the webhook, the route is removed."""
    config = make_config(tmp_path, tunnel={"provider": "tailscale-funnel"})
    gateway = Gateway(config, control=False, runtime_factory=failing_runtime)
    with pytest.raises(RuntimeError):
        await gateway.start()
    mount, unmount = tools.runs("tailscale")[1:]
    assert mount[0] == "funnel" and mount[-2] == "/voice/webhook"
    assert unmount[-2:] == ["/voice/webhook", "off"]
    assert unmount[:5] == ["funnel", "--bg", "--yes", "--https", "443"]
    port = int(mount[-1].split(":")[2].split("/")[0])
    assert refuses_connections(port)


async def test_exposure_failure_closes_the_webhook_listener(
    tmp_path: Path, tools: FakeTools
) -> None:
    """ngrok failing to start fails gateway start and leaves no webhook listener behind."""
    tools.plan("ngrok", behaviour="fail")
    gateway = Gateway(make_config(tmp_path, tunnel={"provider": "ngrok"}), control=False)
    with pytest.raises(ExposureError, match="ngrok exited with code 1"):
        await gateway.start()
    [run] = tools.runs("ngrok")
    assert refuses_connections(int(run["argv"][1]))
    assert gateway.local_webhook_url is None


async def test_tailscale_funnel_url_for_a_real_carrier(
    tmp_path: Path, tools: FakeTools, twilio_on_mock: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A Funnel URL is public, so a real carrier starts with it as the webhook URL."""
    caplog.set_level(logging.INFO)
    config = make_config(tmp_path, **TWILIO, tailscale={"mode": "funnel"})
    async with Gateway(config, control=False, env=None) as gateway:
        assert gateway.unavailable is None
        assert gateway.webhook_url == "https://gateway.tail1234.ts.net/voice/webhook"
    assert tools.runs("tailscale")[-1][-1] == "off"
