"""CLI commands that need no gateway: setup, doctor, tail, latency, tool-schema."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from voicecall.cli.output import CliError, Output
from voicecall.config import doctor, doctor_fix, setup_checks
from voicecall.config.loader import find_config_path
from voicecall.errors import ConfigError
from voicecall.store.follow import tail
from voicecall.store.latency import format_latency, latency_report
from voicecall.tool import tool_schema

__all__ = ["cmd_doctor", "cmd_latency", "cmd_setup", "cmd_tail", "cmd_tool_schema"]


def _agent_error(loaded: Any) -> str | None:
    try:
        from voicecall.agent import load_runner

        load_runner(loaded.config, loaded.env)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


async def cmd_setup(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """The six §11.1 setup checks; exit 1 when any fails."""
    checks = setup_checks(loaded, agent_error=_agent_error(loaded) if loaded.enabled else None)
    ok = all(check.ok for check in checks)
    if out.json_mode:
        out.json(
            {"ok": ok, "checks": [{"id": c.id, "ok": c.ok, "message": c.message} for c in checks]}
        )
    else:
        out.line("Voice call setup: OK" if ok else "Voice call setup: needs attention")
        for check in checks:
            prefix = "OK" if check.ok else "FAIL"
            out.line(f"{prefix} {check.id}: {check.message}", style=None if check.ok else "red")
    return 0 if ok else 1


def _calls_file(loaded: Any, file: str | None) -> Path:
    if file:
        return Path(file).expanduser()
    return Path(loaded.config.store_dir(loaded.env)) / "calls.jsonl"


async def cmd_latency(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """Turn-latency percentiles over the last records (§10.3); 2-space JSON with --json."""
    report = latency_report(_calls_file(loaded, args.file), last=max(1, args.last))
    if out.json_mode:
        out.json(report, indent=True)
    else:
        out.line(format_latency(report))
    return 0


async def cmd_tail(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """Print the last lines of calls.jsonl, then follow it until interrupted."""
    await tail(_calls_file(loaded, args.file), since=args.since, poll_ms=args.poll, write=print)
    return 0


async def cmd_tool_schema(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """Print the `voice_call` tool schema (§11.4)."""
    out.json(tool_schema(), indent=True)
    return 0


def cmd_doctor(config_path: str | None, env: dict[str, str], out: Output, fix: bool) -> int:
    """Legacy keys and validation problems of the config file; --fix rewrites it."""
    path, _ = find_config_path(config_path, env)
    if path is None:
        if out.json_mode:
            out.json({"ok": True, "path": None, "changes": [], "problems": []})
        else:
            out.line("no config file found; defaults (mock carrier) need no fixes")
        return 0
    try:
        result = doctor_fix(path, env=env) if fix else doctor(path, env=env)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if out.json_mode:
        out.json(
            {
                "ok": result.exit_code == 0,
                "path": str(result.path),
                "changes": result.changes,
                "problems": result.problems,
                "fixed": result.fixed,
                "backupPath": str(result.backup_path) if result.backup_path else None,
            }
        )
        return result.exit_code
    for change in result.changes:
        out.line(change)
    if result.fixed and result.backup_path is not None:
        out.line(f"rewrote {result.path} (backup: {result.backup_path})")
    for problem in result.problems:
        out.line(f"problem: {problem}", style="red")
    if not result.changes and not result.problems:
        out.line(f"{result.path}: no legacy keys, no problems")
    return result.exit_code
