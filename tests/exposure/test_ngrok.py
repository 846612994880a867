"""The ngrok child process against a fake `ngrok` on PATH (SPEC §4.7, improvement I15)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from tests.exposure.conftest import FakeTools, alive

from voicecall.exposure import ExposureError, NgrokTunnel, is_ngrok_host

TOKEN = "2abcSECRETtoken_xyz"


async def test_url_from_started_tunnel_line_and_token_only_in_env(
    tools: FakeTools, caplog: pytest.LogCaptureFixture
) -> None:
    """The first "started tunnel" URL is returned; the token is in ngrok's env, not argv or logs."""
    caplog.set_level(logging.DEBUG)
    tunnel = NgrokTunnel(4321, auth_token=TOKEN)
    try:
        assert await tunnel.start() == "https://a1b2-203-0-113-7.ngrok-free.app"
    finally:
        await tunnel.stop()
    [run] = tools.runs("ngrok")
    assert run["argv"] == ["http", "4321", "--log", "stdout", "--log-format", "json"]
    assert run["token"] == TOKEN
    assert TOKEN not in caplog.text


async def test_domain_is_passed_and_used(tools: FakeTools) -> None:
    """A reserved domain goes to ngrok as --domain and comes back as the tunnel URL."""
    tunnel = NgrokTunnel(4321, domain="calls.example.com")
    try:
        assert await tunnel.start() == "https://calls.example.com"
        assert await tunnel.start() == "https://calls.example.com"
    finally:
        await tunnel.stop()
    [run] = tools.runs("ngrok")
    assert run["argv"][-2:] == ["--domain", "calls.example.com"]
    assert run["token"] is None


async def test_stop_kills_ngrok_and_is_idempotent(tools: FakeTools) -> None:
    """stop() ends the ngrok process; a second stop() is harmless."""
    tunnel = NgrokTunnel(4321)
    await tunnel.start()
    [run] = tools.runs("ngrok")
    assert alive(run["pid"])
    await tunnel.stop()
    assert not alive(run["pid"])
    await tunnel.stop()
    assert tunnel.url is None


async def test_start_after_stop_spawns_again(tools: FakeTools) -> None:
    """A stopped tunnel can be started again with a fresh process."""
    tunnel = NgrokTunnel(4321)
    await tunnel.start()
    await tunnel.stop()
    assert await tunnel.start() == "https://a1b2-203-0-113-7.ngrok-free.app"
    await tunnel.stop()
    assert len(tools.runs("ngrok")) == 2


async def test_exit_before_tunnel_reports_ngrok_error_without_the_token(tools: FakeTools) -> None:
    """ngrok dying early is an error quoting its log, with the auth token redacted."""
    tools.plan("ngrok", behaviour="fail")
    tunnel = NgrokTunnel(4321, auth_token=TOKEN)
    with pytest.raises(ExposureError, match="ngrok exited with code 1") as caught:
        await tunnel.start()
    assert "authentication failed" in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_startup_timeout_kills_the_process(tools: FakeTools) -> None:
    """No "started tunnel" line within the timeout is an error, and ngrok is killed."""
    tools.plan("ngrok", behaviour="silent")
    tunnel = NgrokTunnel(4321, startup_timeout_s=0.5)
    with pytest.raises(ExposureError, match=r"did not report a tunnel URL within 0\.5 s"):
        await tunnel.start()
    [run] = tools.runs("ngrok")
    assert not alive(run["pid"])


async def test_missing_binary_names_what_to_install(no_tools: Path) -> None:
    """Without ngrok on PATH the error says to install the ngrok agent."""
    with pytest.raises(ExposureError, match=r"ngrok not found on PATH; install the ngrok agent"):
        await NgrokTunnel(4321).start()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("abc.ngrok-free.app", True),
        ("abc.ngrok-free.dev", True),
        ("x.y.ngrok.io", True),
        ("ngrok.app", True),
        ("abc.ngrok.dev:443", True),
        ("ABC.NGROK.APP.", True),
        ("ngrok.app.evil.com", False),
        ("evilngrok.app", False),
        ("ngrok-free.app.example.com", False),
        ("example.com", False),
        ("[::1]", False),
    ],
)
def test_ngrok_hostname_check(host: str, expected: bool) -> None:
    """ngrok domains are recognised by hostname suffix, never by substring."""
    assert is_ngrok_host(host) is expected
