"""Start and stop one aiohttp app on a TCP address, with port-in-use errors a person can act on."""

from __future__ import annotations

import errno

from aiohttp import web

from voicecall.errors import ConfigError

__all__ = ["Listener", "http_host"]


def http_host(bind: str) -> str:
    """The host to dial for a bind address (wildcards mean loopback; IPv6 gets brackets)."""
    if bind in ("0.0.0.0", "", "*"):
        return "127.0.0.1"
    if bind == "::":
        return "[::1]"
    return f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind


class Listener:
    """One app served on ``bind:port``; ``port`` 0 picks a free port, read back after start."""

    def __init__(self, app: web.Application, *, bind: str, port: int, in_use_message: str) -> None:
        self.app = app
        self.bind = bind
        self.requested_port = port
        self.port = port
        self._in_use_message = in_use_message
        self._runner: web.AppRunner | None = None

    @property
    def running(self) -> bool:
        """Whether the socket is bound."""
        return self._runner is not None and self.port != 0

    def url(self, path: str = "") -> str:
        """``http://host:port`` plus ``path``."""
        return f"http://{http_host(self.bind)}:{self.port}{path}"

    async def start(self, *, bind: bool = True) -> None:
        """Set the app up (startup, cleanup_ctx), then bind unless ``bind`` is false.

        A busy port raises ConfigError with ``in_use_message``.
        """
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        if not bind:
            self._runner = runner
            self.port = 0
            return
        site = web.TCPSite(runner, self.bind, self.requested_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(self._in_use_message.format(port=self.requested_port)) from exc
            raise ConfigError(f"cannot listen on {self.bind}:{self.requested_port}: {exc}") from exc
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.port = int(address[1])
                break

    async def stop(self) -> None:
        """Close the socket and run the app's cleanup; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
