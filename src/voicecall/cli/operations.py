"""CLI commands that act on calls: call, start, continue, speak, dtmf, end, status, smoke."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import orjson

from voicecall.cli.client import GatewayUnreachable, RpcClient, rpc_url
from voicecall.cli.delegate import Caller, run_delegated
from voicecall.cli.output import CliError, Output
from voicecall.config import setup_checks
from voicecall.errors import RpcError
from voicecall.store.latency import format_latency, latency_report
from voicecall.store.records import read_records
from voicecall.store.status import status_from_store

__all__ = [
    "cmd_call",
    "cmd_continue",
    "cmd_dtmf",
    "cmd_end",
    "cmd_smoke",
    "cmd_speak",
    "cmd_start",
    "cmd_status",
]

_CONTINUE_POLL_S = 1.0


def _drop_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _initiate_timeout_s(config: Any) -> float:
    return max(30.0, float(config.ring_timeout_ms) / 1000 + 5)


def _calls_file(loaded: Any) -> Path:
    return Path(loaded.config.store_dir(loaded.env)) / "calls.jsonl"


def _outbound_params(args: argparse.Namespace) -> dict[str, Any]:
    return _drop_none(
        {
            "to": args.to,
            "message": args.message,
            "mode": args.mode,
            "from": getattr(args, "from_number", None),
            "agentId": getattr(args, "agent", None),
            "dtmfSequence": getattr(args, "dtmf_sequence", None),
        }
    )


def _call_report(loaded: Any, call_id: str) -> dict[str, Any]:
    """The finished call's last snapshot and its own latency report, read from the store."""
    path = _calls_file(loaded)
    snapshots = [r for r in read_records(path) if r.get("callId") == call_id]
    record = snapshots[-1] if snapshots else {}
    with tempfile.TemporaryDirectory() as tmp:
        only_this_call = Path(tmp) / "calls.jsonl"
        only_this_call.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in snapshots))
        latency = latency_report(only_this_call)
    return {
        "callId": call_id,
        "state": record.get("state"),
        "endReason": record.get("endReason"),
        "transcript": record.get("transcript", []),
        "latency": latency,
    }


def _print_report(out: Output, report: dict[str, Any]) -> None:
    out.line(f"call {report['callId']} ended: {report['endReason'] or report['state']}")
    for entry in report["transcript"]:
        speaker = "bot " if entry.get("speaker") == "bot" else "user"
        out.line(f"  {speaker}: {entry.get('text', '')}")
    out.line(format_latency(report["latency"]))


async def _place(
    loaded: Any, out: Output, args: argparse.Namespace, method: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    params = _outbound_params(args)
    timeout_s = _initiate_timeout_s(loaded.config)

    async def operation(caller: Caller) -> tuple[dict[str, Any], dict[str, Any] | None]:
        with out.spinner("placing the call"):
            result: dict[str, Any] = await caller.call(method, params, timeout_s=timeout_s)
        if not caller.standalone:
            return result, None
        if not out.json_mode:
            out.json({"callId": result["callId"]})
        await caller.wait_idle(out, "call in progress")
        return result, _call_report(loaded, str(result["callId"]))

    return await run_delegated(loaded, out, operation)


async def cmd_call(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """`call`: voicecall.initiate; standalone runs the whole call and prints its transcript."""
    if args.to is None and loaded.config.to_number is None:
        raise CliError("to number is required (pass --to or set toNumber)")
    result, report = await _place(loaded, out, args, "voicecall.initiate")
    if report is None:
        out.json({"callId": result["callId"]})
    elif out.json_mode:
        out.json(report)
    else:
        _print_report(out, report)
    return 0


async def cmd_start(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """`start`: voicecall.start; prints the result JSON."""
    result, report = await _place(loaded, out, args, "voicecall.start")
    if report is not None and not out.json_mode:
        _print_report(out, report)
    else:
        out.json(result if report is None else {**result, **report})
    return 0


async def _continue_remote(caller: Caller, config: Any, params: dict[str, Any]) -> Any:
    try:
        started = await caller.call("voicecall.continue.start", params)
    except RpcError as exc:
        if exc.code != -32601:
            raise
        timeout_s = config.transcript_timeout_ms / 1000 + 40
        return await caller.call("voicecall.continue", params, timeout_s=timeout_s)
    operation_id = started["operationId"]
    while True:
        polled = await caller.call("voicecall.continue.result", {"operationId": operation_id})
        if polled.get("status") == "completed":
            return polled.get("result")
        if polled.get("status") == "failed":
            raise CliError(str(polled.get("error")))
        await asyncio.sleep(_CONTINUE_POLL_S)


async def cmd_continue(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """`continue`: speak, then wait for the caller's answer; prints {success, transcript}."""
    params = {"callId": args.call_id, "message": args.message}

    async def operation(caller: Caller) -> Any:
        with out.spinner("waiting for the caller"):
            if caller.standalone:
                return await caller.call("voicecall.continue", params)
            return await _continue_remote(caller, loaded.config, params)

    out.json(await run_delegated(loaded, out, operation))
    return 0


async def _simple(loaded: Any, out: Output, method: str, params: dict[str, Any]) -> int:
    async def operation(caller: Caller) -> Any:
        return await caller.call(method, params)

    out.json(await run_delegated(loaded, out, operation))
    return 0


async def cmd_speak(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """`speak`: prints {success:true}."""
    return await _simple(
        loaded, out, "voicecall.speak", {"callId": args.call_id, "message": args.message}
    )


async def cmd_dtmf(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """`dtmf`: prints {success:true}."""
    return await _simple(
        loaded, out, "voicecall.dtmf", {"callId": args.call_id, "digits": args.digits}
    )


async def cmd_end(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """`end`: prints {success:true}."""
    return await _simple(loaded, out, "voicecall.end", {"callId": args.call_id})


def _print_status(out: Output, status: dict[str, Any]) -> None:
    if not status.get("found"):
        out.line("no such call")
        return
    calls = [status["call"]] if "call" in status else status.get("calls", [])
    if not calls:
        out.line("no active calls")
    for call in calls:
        out.line(
            f"{call.get('callId')} {call.get('state')} {call.get('direction')} "
            f"{call.get('from')} -> {call.get('to')}"
        )


async def cmd_status(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """`status`: from the gateway when reachable, else straight from the store (§10.3)."""
    config = loaded.config
    params = _drop_none({"callId": args.call_id})
    try:
        async with RpcClient(rpc_url(config), config.rpc.token) as client:
            status = await client.rpc("voicecall.status", params)
    except GatewayUnreachable:
        status = status_from_store(_calls_file(loaded), call_id=args.call_id, sid=args.call_id)
    except RpcError as exc:
        raise CliError(exc.message, "check rpc.token" if exc.code == -32001 else None) from None
    if out.json_mode:
        out.json(status)
    else:
        _print_status(out, status)
    return 0 if status.get("found") else 1


async def cmd_smoke(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """`smoke`: setup checks, then (with --to --yes) one real call via voicecall.start."""
    checks = setup_checks(loaded)
    setup = {
        "ok": all(c.ok for c in checks),
        "checks": [{"id": c.id, "ok": c.ok, "message": c.message} for c in checks],
    }
    if not setup["ok"]:
        out.json({"ok": False, "setup": setup}) if out.json_mode else _print_setup(out, setup)
        return 1
    if args.to is None:
        result: dict[str, Any] = {"ok": True, "setup": setup, "liveCall": False}
        note = "live-call: skipped (pass --to to place a call)"
    elif not args.yes:
        would = {"to": args.to, "message": args.message, "mode": args.mode}
        result = {"ok": True, "setup": setup, "liveCall": False, "wouldCall": would}
        note = "dry run: add --yes to place the call"
    else:
        params = {"to": args.to, "message": args.message, "mode": args.mode}

        async def operation(caller: Caller) -> Any:
            timeout_s = _initiate_timeout_s(loaded.config)
            with out.spinner("placing the call"):
                return await caller.call("voicecall.start", params, timeout_s=timeout_s)

        started = await run_delegated(loaded, out, operation)
        result = {"ok": True, "setup": setup, "liveCall": True, "callId": started["callId"]}
        note = f"live-call: placed {started['callId']}"
    if out.json_mode:
        out.json(result)
    else:
        _print_setup(out, setup)
        out.line(note)
    return 0


def _print_setup(out: Output, setup: dict[str, Any]) -> None:
    out.line("Voice call setup: OK" if setup["ok"] else "Voice call setup: needs attention")
    for check in setup["checks"]:
        out.line(f"{'OK' if check['ok'] else 'FAIL'} {check['id']}: {check['message']}")
