"""`voicecall serve`: the long-running gateway on uvloop, with SIGHUP reload and clean drain."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from voicecall.cli.output import CliError
from voicecall.config import load_config
from voicecall.errors import ConfigError, MediaCoreUnavailable
from voicecall.gateway import Gateway

__all__ = ["run_serve"]

log = logging.getLogger("voicecall.serve")


async def _reload(gateway: Gateway, config_path: str | None) -> None:
    try:
        loaded = load_config(config_path)
    except ConfigError as exc:
        log.error("reload refused, keeping the running config: %s", exc)
        return
    try:
        await gateway.reload(loaded)
    except Exception:
        log.exception("reload failed; the runtime is stopped until the next SIGHUP")
        return
    log.info("config reloaded")


async def _serve(loaded: Any, config_path: str | None) -> int:
    gateway = Gateway(loaded)
    try:
        await gateway.start()
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = loop.create_task(_reload(gateway, config_path))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    log.info(
        "voicecall gateway ready: rpc %s, webhook %s",
        gateway.rpc_url,
        gateway.webhook_url or "(not running)",
    )
    try:
        await stop.wait()
        log.info("shutting down")
        for task in list(reloads):
            await task
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await gateway.stop()
    log.info("stopped")
    return 0


def run_serve(loaded: Any, config_path: str | None) -> int:
    """Run the gateway until SIGTERM/SIGINT; exit code 0 after a clean drain."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import voicecall.media  # noqa: F401  (the gateway never runs without its compiled core)
    except MediaCoreUnavailable as exc:
        raise CliError(str(exc)) from exc
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_serve(loaded, config_path))
    result: int = uvloop.run(_serve(loaded, config_path))
    return result
