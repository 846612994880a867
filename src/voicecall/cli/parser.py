"""The argparse definition of every `voicecall` command and flag (SPEC §11.1)."""

from __future__ import annotations

import argparse

__all__ = ["build_parser"]


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def _outbound(parser: argparse.ArgumentParser, *, to_required: bool) -> None:
    parser.add_argument("-t", "--to", required=to_required, help="E.164 number to call")
    parser.add_argument("--mode", choices=["notify", "conversation"], default="conversation")
    parser.add_argument(
        "--from", dest="from_number", help="caller ID (fromNumber or a numbers key)"
    )
    parser.add_argument("--agent", help="agent id for this call")
    parser.add_argument("--dtmf-sequence", help="digits to send after connect (conversation)")
    _json(parser)


def build_parser() -> argparse.ArgumentParser:
    """The `voicecall` parser; usage errors exit 2."""
    parser = argparse.ArgumentParser(
        prog="voicecall", description="Self-hosted voice-call gateway for AI agents."
    )
    parser.add_argument("--config", metavar="PATH", help="config file (JSON5)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway")
    _json(serve)

    setup = sub.add_parser("setup", help="check the configuration")
    _json(setup)

    smoke = sub.add_parser("smoke", help="setup checks, then optionally one live call")
    smoke.add_argument("-t", "--to")
    smoke.add_argument("--message", default="voicecall smoke test.")
    smoke.add_argument("--mode", choices=["notify", "conversation"], default="notify")
    smoke.add_argument("--yes", action="store_true", help="really place the call")
    _json(smoke)

    call = sub.add_parser("call", help="place a call (voicecall.initiate)")
    call.add_argument("-m", "--message", required=True)
    _outbound(call, to_required=False)

    start = sub.add_parser("start", help="place a call (voicecall.start)")
    start.add_argument("--message")
    _outbound(start, to_required=True)

    cont = sub.add_parser("continue", help="speak and wait for the caller's answer")
    cont.add_argument("--call-id", required=True)
    cont.add_argument("--message", required=True)
    _json(cont)

    speak = sub.add_parser("speak", help="speak on a call")
    speak.add_argument("--call-id", required=True)
    speak.add_argument("--message", required=True)
    _json(speak)

    dtmf = sub.add_parser("dtmf", help="send DTMF digits")
    dtmf.add_argument("--call-id", required=True)
    dtmf.add_argument("--digits", required=True)
    _json(dtmf)

    end = sub.add_parser("end", help="hang up a call")
    end.add_argument("--call-id", required=True)
    _json(end)

    status = sub.add_parser("status", help="show one call or all active calls")
    status.add_argument("--call-id")
    _json(status)

    tail = sub.add_parser("tail", help="follow calls.jsonl")
    tail.add_argument("--file")
    tail.add_argument("--since", type=int, default=25)
    tail.add_argument("--poll", type=int, default=250, help="poll interval in ms (min 50)")

    latency = sub.add_parser("latency", help="turn latency percentiles from calls.jsonl")
    latency.add_argument("--file")
    latency.add_argument("--last", type=int, default=200)
    _json(latency)

    expose = sub.add_parser("expose", help="mount the webhook on Tailscale serve/funnel")
    expose.add_argument("--mode", default="funnel", help="off | serve | funnel")
    expose.add_argument("--path")
    expose.add_argument("--port", type=int)
    expose.add_argument("--serve-path")
    _json(expose)

    doctor = sub.add_parser("doctor", help="find (and with --fix rewrite) legacy config keys")
    doctor.add_argument("--fix", action="store_true")
    _json(doctor)

    schema = sub.add_parser("tool-schema", help="print the voice_call agent tool schema")
    _json(schema)
    return parser
