"""Fake `ngrok` and `tailscale` executables, first on PATH, that record how they were run."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["FakeTools", "alive"]

FAKE_NGROK = r"""
import json, os, pathlib, sys, time
here = pathlib.Path(__file__).parent
plan = json.loads((here / "ngrok.plan.json").read_text())
with open(here / "ngrok.runs.jsonl", "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "pid": os.getpid(),
                        "token": os.environ.get("NGROK_AUTHTOKEN")}) + "\n")
def log(**entry):
    print(json.dumps({"t": "2024-01-01T00:00:00Z", "lvl": "info", **entry}), flush=True)
behaviour = plan["behaviour"]
log(msg="open config file", path="/home/u/.config/ngrok/ngrok.yml", err=None)
print("not json: starting", flush=True)
log(msg="client session established", obj="tunnels.session")
if behaviour == "fail":
    log(lvl="eror", msg="session closing", err="authentication failed: token "
        + str(os.environ.get("NGROK_AUTHTOKEN")) + " is invalid")
    sys.exit(1)
if behaviour == "started":
    domain = sys.argv[sys.argv.index("--domain") + 1] if "--domain" in sys.argv else None
    url = "https://" + (domain or "a1b2-203-0-113-7.ngrok-free.app")
    log(msg="started tunnel", obj="tunnels", name="command_line",
        addr="http://localhost:" + sys.argv[2], url=url)
    log(msg="started tunnel", obj="tunnels", name="second", url="https://second.ngrok.app")
while True:
    log(msg="heartbeat", obj="csess")
    time.sleep(0.05)
"""

FAKE_TAILSCALE = r"""
import json, pathlib, sys
here = pathlib.Path(__file__).parent
plan = json.loads((here / "tailscale.plan.json").read_text())
with open(here / "tailscale.runs.jsonl", "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\n")
args = sys.argv[1:]
if args[:2] == ["status", "--json"]:
    status = plan.get("status", "ok")
    if status == "fail":
        print("failed to connect to local tailscaled; it doesn't appear to be running")
        sys.exit(1)
    if status == "garbage":
        print("{not json")
        sys.exit(0)
    print(json.dumps({"Version": "1.70.0", "BackendState": "Running",
                      "Self": {"ID": "nABCDEF1CNTRL", "DNSName": "gateway.tail1234.ts.net.",
                               "HostName": "gateway"}}))
    sys.exit(0)
if args and args[0] in ("serve", "funnel"):
    path = args[args.index("--set-path") + 1]
    if args[-1] != "off" and path in plan.get("fail_paths", []):
        print("Funnel is not enabled on your tailnet.\nTo enable, visit:\n\n"
              "         https://login.tailscale.com/f/funnel?node=nABCDEF1CNTRL")
        sys.exit(1)
    sys.exit(0)
print("unexpected arguments", args)
sys.exit(2)
"""


def alive(pid: int) -> bool:
    """Whether a process with this id still exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class FakeTools:
    """The directory holding the fakes; plans steer them, runs record their invocations."""

    bin_dir: Path

    def install(self, name: str, source: str) -> None:
        script = self.bin_dir / name
        script.write_text(f"#!{sys.executable}\n{source}")
        script.chmod(0o755)

    def plan(self, name: str, **plan: Any) -> None:
        (self.bin_dir / f"{name}.plan.json").write_text(json.dumps(plan))

    def runs(self, name: str) -> list[Any]:
        path = self.bin_dir / f"{name}.runs.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    """Fake ngrok and tailscale first on PATH (well-behaved plans by default)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fakes = FakeTools(bin_dir)
    fakes.install("ngrok", FAKE_NGROK)
    fakes.install("tailscale", FAKE_TAILSCALE)
    fakes.plan("ngrok", behaviour="started")
    fakes.plan("tailscale", status="ok", fail_paths=[])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)
    monkeypatch.delenv("NGROK_DOMAIN", raising=False)
    return fakes


@pytest.fixture
def no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH on which neither ngrok nor tailscale can be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty
