"""The `voicecall` command line: a thin layer over the Gateway and its JSON-RPC API."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from voicecall.cli.expose import cmd_expose
from voicecall.cli.local import cmd_doctor, cmd_latency, cmd_setup, cmd_tail, cmd_tool_schema
from voicecall.cli.operations import (
    cmd_call,
    cmd_continue,
    cmd_dtmf,
    cmd_end,
    cmd_smoke,
    cmd_speak,
    cmd_start,
    cmd_status,
)
from voicecall.cli.output import CliError, Output
from voicecall.cli.parser import build_parser
from voicecall.errors import ConfigError, VoicecallError

__all__ = ["main"]

Command = Callable[[Any, Output, Any], Coroutine[Any, Any, int]]

COMMANDS: dict[str, Command] = {
    "setup": cmd_setup,
    "smoke": cmd_smoke,
    "call": cmd_call,
    "start": cmd_start,
    "continue": cmd_continue,
    "speak": cmd_speak,
    "dtmf": cmd_dtmf,
    "end": cmd_end,
    "status": cmd_status,
    "tail": cmd_tail,
    "latency": cmd_latency,
    "expose": cmd_expose,
    "tool-schema": cmd_tool_schema,
}


def _fail(error: CliError) -> int:
    sys.stdout.flush()
    print(f"error: {error}", file=sys.stderr)
    if error.hint:
        print(f"hint: {error.hint}", file=sys.stderr)
    return 1


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    out = Output(json_mode=bool(getattr(args, "json", False)))
    if args.command == "doctor":
        return cmd_doctor(args.config, dict(os.environ), out, args.fix)
    from voicecall.config import load_config

    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.command == "serve":
        from voicecall.cli.serve import run_serve

        return run_serve(loaded, args.config)
    return asyncio.run(COMMANDS[args.command](loaded, out, args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `voicecall` console script; returns the exit code."""
    try:
        return _run(argv)
    except CliError as exc:
        return _fail(exc)
    except VoicecallError as exc:
        return _fail(CliError(str(exc)))
    except KeyboardInterrupt:
        return 130
