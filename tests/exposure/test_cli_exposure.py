"""`voicecall setup`, `smoke` and `expose` output for real carriers (SPEC §11.1), text and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.exposure.conftest import FakeTools

from voicecall.cli import main

TWILIO: dict[str, Any] = {
    "provider": "twilio",
    "fromNumber": "+15550001111",
    "twilio": {"accountSid": "AC" + "0" * 32, "authToken": "secret"},
}
REFUSAL = (
    "webhook URL {url} points at a local or private address; carriers cannot reach it."
    " Set publicUrl to a public https URL or configure tunnel/tailscale"
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty VOICECALL_HOME; tests write its config.json5."""
    monkeypatch.setenv("VOICECALL_HOME", str(tmp_path))
    monkeypatch.delenv("VOICECALL_CONFIG", raising=False)
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def write(home: Path, **config: Any) -> None:
    (home / "config.json5").write_text(json.dumps(config))


def setup_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return result


def exposure(result: dict[str, Any]) -> dict[str, Any]:
    [check] = [c for c in result["checks"] if c["id"] == "webhook-exposure"]
    return dict(check)


def test_public_url_passes_setup_in_text(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A complete Twilio config with a public publicUrl prints OK lines and exits 0."""
    write(home, **TWILIO, publicUrl="https://voice.example.com/voice/webhook")
    assert main(["setup"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Voice call setup: OK"
    assert "OK provider: provider: twilio" in lines
    assert "OK webhook-exposure: webhook: https://voice.example.com/voice/webhook" in lines
    assert "OK mode: audio mode: carrier-native speech" in lines


def test_private_public_url_fails_with_the_refusal(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A private publicUrl fails webhook-exposure with the §4.6 text in JSON."""
    url = "https://10.1.2.3/voice/webhook"
    write(home, **TWILIO, publicUrl=url)
    assert main(["setup", "--json"]) == 1
    result = setup_json(capsys)
    assert result["ok"] is False
    assert exposure(result) == {
        "id": "webhook-exposure",
        "ok": False,
        "message": REFUSAL.format(url=url),
    }


def test_no_exposure_asks_for_public_url(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without publicUrl, tunnel or Tailscale a real carrier is told what to set."""
    write(home, **TWILIO, serve={"path": "/hooks/in"})
    assert main(["setup"]) == 1
    assert (
        "FAIL webhook-exposure: Set publicUrl or configure tunnel/tailscale so the carrier can "
        "reach /hooks/in"
    ) in capsys.readouterr().out


def test_public_bind_address_is_the_webhook(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A public serve.bind is itself the webhook URL."""
    write(home, **TWILIO, serve={"bind": "203.0.113.9", "port": 8080})
    assert main(["setup", "--json"]) == 0
    assert exposure(setup_json(capsys))["message"] == (
        "webhook: http://203.0.113.9:8080/voice/webhook"
    )


@pytest.mark.parametrize(
    ("exposure_config", "message"),
    [
        ({"tunnel": {"provider": "ngrok"}}, "exposed via ngrok"),
        ({"tunnel": {"provider": "tailscale-funnel"}}, "exposed via tailscale funnel"),
        ({"tailscale": {"mode": "funnel"}}, "exposed via tailscale funnel"),
        (
            {"tunnel": {"provider": "tailscale-serve"}, "tailscale": {"mode": "funnel"}},
            "exposed via tailscale serve (tailnet only)",
        ),
        ({"tailscale": {"mode": "serve"}}, "exposed via tailscale serve (tailnet only)"),
    ],
)
def test_exposed_via(
    home: Path,
    tools: FakeTools,
    capsys: pytest.CaptureFixture[str],
    exposure_config: dict[str, Any],
    message: str,
) -> None:
    """A tunnel or Tailscale exposure is named; tunnel.provider wins over tailscale.mode."""
    write(home, **TWILIO, **exposure_config)
    assert main(["setup", "--json"]) == 0
    expected = {"id": "webhook-exposure", "ok": True, "message": message}
    assert exposure(setup_json(capsys)) == expected


@pytest.mark.parametrize(
    ("exposure_config", "install"),
    [
        ({"tunnel": {"provider": "ngrok"}}, "ngrok not found on PATH; install the ngrok agent"),
        ({"tailscale": {"mode": "funnel"}}, "tailscale not found on PATH; install Tailscale"),
    ],
)
def test_missing_tool_fails_setup(
    home: Path,
    no_tools: Path,
    capsys: pytest.CaptureFixture[str],
    exposure_config: dict[str, Any],
    install: str,
) -> None:
    """A configured ngrok/tailscale that is not installed fails setup, naming what to install."""
    write(home, **TWILIO, **exposure_config)
    assert main(["setup"]) == 1
    assert f"FAIL webhook-exposure: {install}" in capsys.readouterr().out


def test_both_audio_modes_fail_the_mode_check(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Streaming and realtime together fail provider-config and mode with the same text."""
    write(
        home,
        **TWILIO,
        publicUrl="https://voice.example.com/voice/webhook",
        streaming={"enabled": True},
        realtime={"enabled": True},
    )
    assert main(["setup", "--json"]) == 1
    checks = {c["id"]: c for c in setup_json(capsys)["checks"]}
    both = "realtime.enabled and streaming.enabled cannot both be true; pick one audio mode"
    assert checks["mode"] == {"id": "mode", "ok": False, "message": both}
    assert both in checks["provider-config"]["message"]


def test_missing_credentials_are_joined(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every missing Telnyx credential is listed, joined by "; "."""
    write(home, provider="telnyx", publicUrl="https://voice.example.com/voice/webhook")
    assert main(["setup", "--json"]) == 1
    checks = {c["id"]: c for c in setup_json(capsys)["checks"]}
    assert checks["provider-config"]["message"] == (
        "fromNumber is required for provider telnyx; "
        "telnyx.apiKey is required (or set TELNYX_API_KEY); "
        "telnyx.connectionId is required (or set TELNYX_CONNECTION_ID); "
        "telnyx.publicKey is required unless skipSignatureVerification is true"
        " (or set TELNYX_PUBLIC_KEY)"
    )


def test_smoke_with_to_but_without_yes_places_no_call(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """smoke --to on a real carrier is a dry run: it prints the call and dials nothing."""
    write(home, **TWILIO, publicUrl="https://voice.example.com/voice/webhook", store=str(home))
    assert main(["smoke", "--to", "+15550002222"]) == 0
    out = capsys.readouterr().out
    assert "Voice call setup: OK" in out
    assert out.splitlines()[-1] == "dry run: add --yes to place the call"
    assert main(["smoke", "--to", "+15550002222", "--json", "--message", "hi"]) == 0
    result = setup_json(capsys)
    assert result["liveCall"] is False
    assert result["wouldCall"] == {"to": "+15550002222", "message": "hi", "mode": "notify"}
    assert not (home / "calls.jsonl").exists()


def test_smoke_stops_on_failed_setup(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """smoke with a failing setup exits 1 with ok false, even with --yes."""
    write(home, **TWILIO)
    assert main(["smoke", "--to", "+15550002222", "--yes", "--json"]) == 1
    result = setup_json(capsys)
    assert result["ok"] is False
    assert exposure(result["setup"])["ok"] is False
    assert not (home / "calls.jsonl").exists()


def expose_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return setup_json(capsys)


def test_expose_funnel_json(
    home: Path, tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    """expose mounts webhook and stream paths and prints the §11.1 JSON."""
    write(home, streaming={"enabled": True}, serve={"port": 4555})
    assert main(["expose", "--json"]) == 0
    assert expose_json(capsys) == {
        "ok": True,
        "mode": "funnel",
        "path": "/voice/webhook",
        "streamPaths": ["/voice/stream"],
        "localUrl": "http://127.0.0.1:4555/voice/webhook",
        "publicUrl": "https://gateway.tail1234.ts.net/voice/webhook",
    }
    mounts = [run[-2:] for run in tools.runs("tailscale")[1:]]
    assert mounts == [
        ["/voice/webhook", "http://127.0.0.1:4555/voice/webhook"],
        ["/voice/stream", "http://127.0.0.1:4555/voice/stream"],
    ]


def test_expose_flags_and_unknown_mode(
    home: Path, tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    """--path/--port/--serve-path steer the route; an unknown mode means funnel."""
    write(home, tailscale={"port": 8443})
    argv = ["expose", "--mode", "bogus", "--path", "/pub", "--port", "7000", "--serve-path", "/in"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tailscale funnel: https://gateway.tail1234.ts.net:8443/pub" in out
    assert "http://127.0.0.1:7000/in" in out
    assert tools.runs("tailscale")[1] == [
        "funnel",
        "--bg",
        "--yes",
        "--https",
        "8443",
        "--set-path",
        "/pub",
        "http://127.0.0.1:7000/in",
    ]


def test_expose_failure_rolls_back_and_hints(
    home: Path, tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused stream mount removes the webhook route and the JSON hint links the admin page."""
    tools.plan("tailscale", fail_paths=["/voice/stream"])
    write(home, streaming={"enabled": True})
    assert main(["expose", "--json"]) == 1
    result = expose_json(capsys)
    assert result["ok"] is False
    assert result["publicUrl"] is None
    assert result["hint"]["enableUrl"] == "https://login.tailscale.com/f/funnel?node=nABCDEF1CNTRL"
    assert result["hint"]["note"].startswith("Funnel is not enabled on your tailnet.")
    assert tools.runs("tailscale")[-1][-2:] == ["/voice/webhook", "off"]


def test_expose_off_unmounts(
    home: Path, tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    """--mode off removes the webhook and stream routes."""
    write(home, realtime={"enabled": True})
    assert main(["expose", "--mode", "off"]) == 0
    assert capsys.readouterr().out.startswith(
        "tailscale routes removed: /voice/webhook, /voice/stream/realtime"
    )
    offs = [run[-2:] for run in tools.runs("tailscale")[1:]]
    assert sorted(offs) == [["/voice/stream/realtime", "off"], ["/voice/webhook", "off"]]


def test_expose_unavailable_tailscale(
    home: Path, tools: FakeTools, capsys: pytest.CaptureFixture[str]
) -> None:
    """When tailscale status fails, expose reports ok false and mounts nothing."""
    tools.plan("tailscale", status="fail")
    write(home)
    assert main(["expose", "--json"]) == 1
    assert expose_json(capsys)["ok"] is False
    assert tools.runs("tailscale") == [["status", "--json"]]


def test_expose_without_tailscale_names_the_install(
    home: Path, no_tools: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the tailscale binary expose fails with an error saying to install Tailscale."""
    write(home)
    assert main(["expose"]) == 1
    assert "error: tailscale not found on PATH; install Tailscale" in capsys.readouterr().err
