"""`voicecall expose`: mount or unmount the webhook on Tailscale serve/funnel (SPEC §4.7)."""

from __future__ import annotations

import argparse
import asyncio
import shutil
from typing import Any

import orjson

from voicecall.cli.output import CliError, Output

__all__ = ["cmd_expose", "tailscale_status"]


async def _run(*argv: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


async def tailscale_status(binary: str) -> dict[str, str] | None:
    """``{"dnsName", "id"}`` of this node, or None when Tailscale cannot say."""
    code, text = await _run(binary, "status", "--json")
    if code != 0:
        return None
    try:
        status = orjson.loads(text)
        node = status["Self"]
        return {"dnsName": str(node["DNSName"]).rstrip("."), "id": str(node["ID"])}
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def _stream_paths(config: Any) -> list[str]:
    paths = []
    if config.streaming.enabled:
        paths.append(config.streaming.stream_path)
    if config.realtime.enabled:
        paths.append(config.realtime.stream_path)
    return paths


async def cmd_expose(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """Mount (or with ``--mode off`` unmount) the webhook and stream paths."""
    config = loaded.config
    mode = args.mode if args.mode in ("off", "serve", "funnel") else "funnel"
    path = args.path or config.tailscale.path or config.serve.path
    port = args.port or config.serve.port
    serve_path = args.serve_path or config.serve.path
    https_port = str(config.tailscale.port)
    binary = shutil.which("tailscale")
    if binary is None:
        raise CliError("tailscale not found; install Tailscale or configure tunnel.provider")
    status = await tailscale_status(binary)
    stream_paths = _stream_paths(config)
    routes = [(path, serve_path), *((p, p) for p in stream_paths)]
    local_url = f"http://127.0.0.1:{port}{serve_path}"
    result: dict[str, Any] = {
        "ok": status is not None,
        "mode": mode,
        "path": path,
        "streamPaths": stream_paths,
        "localUrl": local_url,
        "publicUrl": None,
    }
    if status is None:
        out.json(result)
        return 1
    verb = "serve" if mode == "off" else mode
    mounted: list[str] = []
    for public_path, local_path in routes:
        argv = [binary, verb, "--bg", "--yes", "--https", https_port, "--set-path", public_path]
        argv.append("off" if mode == "off" else f"http://127.0.0.1:{port}{local_path}")
        code, text = await _run(*argv)
        if code != 0 and mode != "off":
            for done in mounted:
                await _run(
                    binary, verb, "--bg", "--yes", "--https", https_port, "--set-path", done, "off"
                )
            result["ok"] = False
            result["hint"] = {
                "note": text.strip() or f"tailscale {verb} failed",
                "enableUrl": f"https://login.tailscale.com/f/{mode}?node={status['id']}",
            }
            out.json(result)
            return 1
        mounted.append(public_path)
    if mode != "off":
        suffix = "" if https_port == "443" else f":{https_port}"
        result["publicUrl"] = f"https://{status['dnsName']}{suffix}{path}"
    out.json(result)
    return 0
