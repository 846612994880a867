"""`voicecall expose`: mount or unmount the webhook and stream paths on Tailscale (SPEC §11.1)."""

from __future__ import annotations

import argparse
from typing import Any

from voicecall.cli.output import CliError, Output
from voicecall.exposure.errors import ExposureError
from voicecall.exposure.tailscale import (
    TailscaleMode,
    TailscaleRoutes,
    enable_url,
    find_tailscale,
    stream_paths,
    tailscale_status,
)
from voicecall.exposure.webhook_url import tailscale_public_url

__all__ = ["cmd_expose"]

_SERVE_NOTE = "tailscale serve is reachable only inside your tailnet; carriers cannot reach it"


def _print_text(out: Output, result: dict[str, Any]) -> None:
    mode, paths = result["mode"], [result["path"], *result["streamPaths"]]
    if not result["ok"]:
        out.line(f"tailscale {mode}: failed")
    elif mode == "off":
        out.line(f"tailscale routes removed: {', '.join(paths)}")
    else:
        out.line(f"tailscale {mode}: {result['publicUrl']} -> {result['localUrl']}")
        for path in result["streamPaths"]:
            out.line(f"stream path: {path}")
        if mode == "serve":
            out.line(f"note: {_SERVE_NOTE}")
    hint = result.get("hint")
    if hint:
        out.line(f"note: {hint['note']}")
        if hint.get("enableUrl"):
            out.line(f"enable at: {hint['enableUrl']}")


async def cmd_expose(loaded: Any, out: Output, args: argparse.Namespace) -> int:
    """Mount (or with ``--mode off`` unmount) the webhook and enabled stream paths."""
    config = loaded.config
    mode = args.mode if args.mode in ("off", "serve", "funnel") else "funnel"
    path = args.path or config.tailscale.path or config.serve.path
    port = args.port or config.serve.port
    serve_path = args.serve_path or config.serve.path
    streams = stream_paths(config)
    result: dict[str, Any] = {
        "ok": False,
        "mode": mode,
        "path": path,
        "streamPaths": streams,
        "localUrl": f"http://127.0.0.1:{port}{serve_path}",
        "publicUrl": None,
    }
    try:
        binary = find_tailscale(loaded.env)
    except ExposureError as exc:
        raise CliError(str(exc)) from None
    node = await tailscale_status(binary, loaded.env)
    verb: TailscaleMode = "funnel" if mode == "funnel" else "serve"
    routes = TailscaleRoutes(
        binary,
        verb,
        https_port=config.tailscale.port,
        local_port=port,
        routes=[(path, serve_path), *((p, p) for p in streams)],
        env=loaded.env,
    )
    if node is None:
        result["hint"] = {"note": "tailscale status --json failed; is tailscaled running?"}
    elif mode == "off":
        routes.mounted = [path, *streams]
        failed = await routes.unmount()
        result["ok"] = not failed
        if failed:
            result["hint"] = {"note": f"tailscale could not remove {', '.join(failed)}"}
    else:
        try:
            await routes.mount()
        except ExposureError as exc:
            result["hint"] = {
                "note": exc.output or str(exc),
                "enableUrl": enable_url(mode, node.id),
            }
        else:
            result["ok"] = True
            result["publicUrl"] = tailscale_public_url(node.dns_name, config.tailscale.port, path)
    if out.json_mode:
        out.json(result)
    else:
        _print_text(out, result)
    return 0 if result["ok"] else 1
