"""Tailscale status, mounts and rollback against a fake `tailscale` on PATH (SPEC §4.7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.exposure.conftest import FakeTools, alive

from voicecall.config import VoicecallConfig
from voicecall.exposure import (
    ExposureError,
    TailscaleExposure,
    TailscaleNode,
    WebhookExposure,
    find_tailscale,
    tailscale_mode,
    tailscale_status,
)


def config(**data: Any) -> VoicecallConfig:
    return VoicecallConfig.model_validate(data)


STREAMING = {"streaming": {"enabled": True}}


async def test_status_reads_dns_name_and_id(tools: FakeTools) -> None:
    """status --json gives the MagicDNS name without its trailing dot and the node id."""
    node = await tailscale_status(find_tailscale())
    assert node == TailscaleNode(dns_name="gateway.tail1234.ts.net", id="nABCDEF1CNTRL")


@pytest.mark.parametrize("status", ["fail", "garbage"])
async def test_status_unavailable(tools: FakeTools, status: str) -> None:
    """A failing status command or invalid JSON means Tailscale is unavailable."""
    tools.plan("tailscale", status=status)
    assert await tailscale_status(find_tailscale()) is None


def test_missing_binary_names_what_to_install(no_tools: Path) -> None:
    """Without tailscale on PATH the error says to install Tailscale."""
    with pytest.raises(ExposureError, match=r"tailscale not found on PATH; install Tailscale"):
        find_tailscale()


def test_mode_from_tunnel_provider_or_legacy_key() -> None:
    """tunnel.provider tailscale-* picks the mode; otherwise tailscale.mode does, unless ngrok."""
    assert tailscale_mode(config()) is None
    assert tailscale_mode(config(tunnel={"provider": "tailscale-funnel"})) == "funnel"
    assert tailscale_mode(config(tunnel={"provider": "tailscale-serve"})) == "serve"
    assert tailscale_mode(config(tailscale={"mode": "serve"})) == "serve"
    both = config(tunnel={"provider": "ngrok"}, tailscale={"mode": "funnel"})
    assert tailscale_mode(both) is None


async def test_mounts_webhook_and_stream_paths_then_unmounts(tools: FakeTools) -> None:
    """Funnel mounts the webhook and enabled stream paths and removes them again on stop."""
    exposure = TailscaleExposure(config(**STREAMING, tailscale={"port": 8443}), "funnel")
    url = await exposure.start(4555)
    assert url == "https://gateway.tail1234.ts.net:8443/voice/webhook"
    assert await exposure.start(4555) == url
    await exposure.stop()
    await exposure.stop()
    runs = tools.runs("tailscale")
    assert runs == [
        ["status", "--json"],
        [
            "funnel",
            "--bg",
            "--yes",
            "--https",
            "8443",
            "--set-path",
            "/voice/webhook",
            "http://127.0.0.1:4555/voice/webhook",
        ],
        [
            "funnel",
            "--bg",
            "--yes",
            "--https",
            "8443",
            "--set-path",
            "/voice/stream",
            "http://127.0.0.1:4555/voice/stream",
        ],
        ["funnel", "--bg", "--yes", "--https", "8443", "--set-path", "/voice/stream", "off"],
        ["funnel", "--bg", "--yes", "--https", "8443", "--set-path", "/voice/webhook", "off"],
    ]


async def test_tailscale_path_maps_onto_serve_path(tools: FakeTools) -> None:
    """tailscale.path is the public path; it forwards to serve.path on the local listener."""
    cfg = config(serve={"path": "/hooks/in"}, tailscale={"path": "/pub/hook"})
    exposure = TailscaleExposure(cfg, "serve")
    assert await exposure.start(4555) == "https://gateway.tail1234.ts.net/pub/hook"
    await exposure.stop()
    mount = tools.runs("tailscale")[1]
    assert mount == [
        "serve",
        "--bg",
        "--yes",
        "--set-path",
        "/pub/hook",
        "http://127.0.0.1:4555/hooks/in",
    ]


async def test_failed_mount_rolls_back_mounted_routes(tools: FakeTools) -> None:
    """When a stream path cannot be mounted, the webhook route is removed and the error says how
    to enable Funnel."""
    tools.plan("tailscale", fail_paths=["/voice/stream"])
    exposure = TailscaleExposure(config(**STREAMING), "funnel")
    with pytest.raises(ExposureError) as caught:
        await exposure.start(4555)
    message = str(caught.value)
    assert message.startswith("tailscale funnel failed for /voice/stream: Funnel is not enabled")
    assert "https://login.tailscale.com/f/funnel?node=nABCDEF1CNTRL" in message
    verbs = [(run[-2], run[-1]) for run in tools.runs("tailscale")[1:]]
    assert verbs == [
        ("/voice/webhook", "http://127.0.0.1:4555/voice/webhook"),
        ("/voice/stream", "http://127.0.0.1:4555/voice/stream"),
        ("/voice/webhook", "off"),
    ]
    await exposure.stop()
    assert len(tools.runs("tailscale")) == 4


async def test_unavailable_tailscale_is_an_error(tools: FakeTools) -> None:
    """A configured Tailscale that cannot report its status fails the exposure step."""
    tools.plan("tailscale", status="fail")
    with pytest.raises(ExposureError, match="tailscale is unavailable"):
        await TailscaleExposure(config(), "funnel").start(4555)


async def test_webhook_exposure_with_ngrok_resolves_and_stops(tools: FakeTools) -> None:
    """The ngrok step yields tunnel URL + serve.path, and stop() kills ngrok."""
    exposure = WebhookExposure(config(tunnel={"provider": "ngrok"}, serve={"path": "/in"}))
    assert await exposure.start(4555) == "https://a1b2-203-0-113-7.ngrok-free.app/in"
    [run] = tools.runs("ngrok")
    assert run["argv"][:2] == ["http", "4555"]
    await exposure.stop()
    await exposure.stop()
    assert not alive(run["pid"])
    assert tools.runs("tailscale") == []


async def test_public_url_wins_over_a_running_tunnel(tools: FakeTools) -> None:
    """With publicUrl set the tunnel still runs, but carriers get publicUrl."""
    cfg = config(tunnel={"provider": "tailscale-funnel"}, publicUrl="https://v.example.com/w")
    exposure = WebhookExposure(cfg)
    assert await exposure.start(4555) == "https://v.example.com/w"
    await exposure.stop()
    assert [run[-1] for run in tools.runs("tailscale")[1:]] == [
        "http://127.0.0.1:4555/voice/webhook",
        "off",
    ]
