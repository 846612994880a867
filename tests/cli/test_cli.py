"""The `voicecall` CLI invoked through main([...]): output shapes, exit codes, delegation."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest

from voicecall.cli import main

FAST_MOCK = {"ringMs": 5, "answerMs": 10, "speechMsPerChar": 0, "replyMs": 10}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A VOICECALL_HOME with a fast mock config and an RPC port nobody listens on."""
    config = {
        "provider": "mock",
        "serve": {"port": 0},
        "rpc": {"port": free_port()},
        "mock": FAST_MOCK,
        "outbound": {"notifyHangupDelaySec": 0},
    }
    (tmp_path / "config.json5").write_text(json.dumps(config))
    monkeypatch.setenv("VOICECALL_HOME", str(tmp_path))
    monkeypatch.delenv("VOICECALL_CONFIG", raising=False)
    return tmp_path


def last_json(text: str) -> Any:
    return orjson.loads(text.strip().splitlines()[-1])


def test_usage_error_exits_2(home, capsys) -> None:
    """A missing required flag is a usage error (exit 2)."""
    assert main(["call"]) == 2


def test_setup_json_lists_six_checks(home, capsys) -> None:
    """setup --json returns ok and the six check ids in order."""
    assert main(["setup", "--json"]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["ok"] is True
    assert [c["id"] for c in result["checks"]] == [
        "enabled",
        "provider",
        "provider-config",
        "webhook-exposure",
        "mode",
        "agent",
    ]


def test_setup_failure_exits_1(home, capsys) -> None:
    """A twilio config without credentials fails setup with exit 1 and FAIL lines."""
    (home / "config.json5").write_text('{provider: "twilio", fromNumber: "+15550000000"}')
    assert main(["setup"]) == 1
    out = capsys.readouterr().out
    assert "Voice call setup: needs attention" in out
    assert "FAIL provider-config: twilio.accountSid is required" in out


def test_smoke_without_to_places_no_call(home, capsys) -> None:
    """smoke without --to reports liveCall false."""
    assert main(["smoke", "--json"]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["liveCall"] is False and "wouldCall" not in result


def test_smoke_dry_run_shape(home, capsys) -> None:
    """smoke --to without --yes prints the call it would place."""
    assert main(["smoke", "--to", "+15550001234", "--json"]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["wouldCall"] == {
        "to": "+15550001234",
        "message": "voicecall smoke test.",
        "mode": "notify",
    }
    assert not (home / "calls.jsonl").exists()


def test_standalone_conversation_call_prints_transcript_and_latency(home, capsys) -> None:
    """With no gateway running, `call` runs the whole mock call and prints the transcript."""
    code = main(["call", "--to", "+15550001234", "--message", "Hello", "--mode", "conversation"])
    assert code == 0
    out = capsys.readouterr().out
    call_id = orjson.loads(out.splitlines()[0])["callId"]
    assert f"call {call_id} ended: hangup-user" in out
    assert "user: Thanks, goodbye." in out
    assert "response latency" in out


def test_standalone_notify_call_json(home, capsys) -> None:
    """`call --json` standalone prints one JSON report with the final state."""
    assert main(["call", "-t", "+15550001234", "-m", "Parcel", "--mode", "notify", "--json"]) == 0
    report = last_json(capsys.readouterr().out)
    assert report["endReason"] == "hangup-bot"
    assert report["transcript"][0]["text"] == "Parcel"


def test_status_and_latency_read_the_store(home, capsys) -> None:
    """Without a gateway, status reads calls.jsonl; latency --json counts the turns."""
    main(["call", "-t", "+15550001234", "-m", "Hi", "--mode", "conversation", "--json"])
    call_id = last_json(capsys.readouterr().out)["callId"]
    assert main(["status", "--call-id", call_id, "--json"]) == 0
    status = last_json(capsys.readouterr().out)
    assert status["call"]["endReason"] == "hangup-user"
    assert main(["latency", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["turnsCounted"] == 3


def test_status_of_unknown_call_exits_1(home, capsys) -> None:
    """An unknown call id is reported as not found with exit 1."""
    assert main(["status", "--call-id", "nope"]) == 1
    assert "no such call" in capsys.readouterr().out


def test_end_unknown_call_is_an_error_line(home, capsys) -> None:
    """A runtime failure exits 1 with `error: <message>`."""
    assert main(["end", "--call-id", "nope"]) == 1
    assert capsys.readouterr().err.strip().endswith("error: call not found: nope")


def test_tool_schema(home, capsys) -> None:
    """tool-schema prints the voice_call schema."""
    assert main(["tool-schema"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "voice_call"


def test_doctor_reports_and_fixes_legacy_keys(home, capsys) -> None:
    """doctor lists legacy keys (exit 1); --fix rewrites and keeps a .bak."""
    (home / "config.json5").write_text('{provider: "log"}')
    assert main(["doctor"]) == 1
    assert "provider" in capsys.readouterr().out
    assert main(["doctor", "--fix"]) == 0
    assert (home / "config.json5.bak").exists()
    assert json.loads((home / "config.json5").read_text())["provider"] == "mock"


def test_bad_config_is_an_error(home, capsys) -> None:
    """An unknown config key exits 1 naming the key."""
    (home / "config.json5").write_text("{bogus: 1}")
    assert main(["status"]) == 1
    assert "bogus" in capsys.readouterr().err
