"""The ngrok agent as a child process: spawn, read the tunnel URL, kill on stop (SPEC §4.7)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Mapping
from typing import Any

import orjson

from voicecall.config.validate import NGROK_INSTALL_HINT
from voicecall.exposure.errors import ExposureError

__all__ = [
    "NGROK_DOMAINS",
    "NGROK_INSTALL_HINT",
    "STARTUP_TIMEOUT_S",
    "NgrokTunnel",
    "is_ngrok_host",
    "ngrok_argv",
]

log = logging.getLogger(__name__)

NGROK_DOMAINS = ("ngrok.io", "ngrok.app", "ngrok.dev", "ngrok-free.app", "ngrok-free.dev")
STARTUP_TIMEOUT_S = 30.0
_STOP_GRACE_S = 5.0
_LINE_LIMIT_BYTES = 1 << 20
_FAILURE_LEVELS = ("eror", "error", "crit", "fatal")


def is_ngrok_host(host: str) -> bool:
    """Whether ``host`` is one of ngrok's domains or a subdomain of one (never a substring)."""
    name = host.strip().lower()
    if name.startswith("["):
        return False  # an IPv6 literal
    name = name.partition(":")[0].rstrip(".")
    return any(name == domain or name.endswith("." + domain) for domain in NGROK_DOMAINS)


def ngrok_argv(binary: str, port: int, domain: str | None) -> list[str]:
    """`ngrok http <port> --log stdout --log-format json [--domain <domain>]`; no secrets."""
    argv = [binary, "http", str(port), "--log", "stdout", "--log-format", "json"]
    if domain:
        argv += ["--domain", domain]
    return argv


def _log_entry(line: bytes) -> dict[str, Any] | None:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return entry if isinstance(entry, dict) else None


class NgrokTunnel:
    """One `ngrok http` process for the webhook port.

    The auth token reaches ngrok only through ``NGROK_AUTHTOKEN`` in its environment (never its
    argv, never our logs). ``start()`` returns the public base URL from the first
    ``"started tunnel"`` log line; later output is drained so ngrok never blocks on its pipe.
    """

    def __init__(
        self,
        port: int,
        *,
        auth_token: str | None = None,
        domain: str | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.port = port
        self.domain = domain
        self.startup_timeout_s = startup_timeout_s
        self._auth_token = auth_token
        self._env = dict(os.environ if env is None else env)
        self._process: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self._stopping = False
        self.url: str | None = None

    def _redact(self, text: str) -> str:
        token = self._auth_token
        return text.replace(token, "***") if token else text

    def _child_env(self) -> dict[str, str]:
        env = dict(self._env)
        if self._auth_token:
            env["NGROK_AUTHTOKEN"] = self._auth_token
        return env

    async def start(self) -> str:
        """Spawn ngrok and wait (at most ``startup_timeout_s``) for its public URL."""
        if self.url is not None:
            return self.url
        binary = shutil.which("ngrok", path=self._env.get("PATH"))
        if binary is None:
            raise ExposureError(NGROK_INSTALL_HINT)
        self._stopping = False
        try:
            process = await asyncio.create_subprocess_exec(
                *ngrok_argv(binary, self.port, self.domain),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._child_env(),
                limit=_LINE_LIMIT_BYTES,
            )
        except OSError as exc:
            raise ExposureError(f"cannot run ngrok ({binary}): {exc}") from exc
        self._process = process
        try:
            async with asyncio.timeout(self.startup_timeout_s):
                url = await self._read_url(process)
        except TimeoutError:
            await self.stop()
            raise ExposureError(
                f"ngrok did not report a tunnel URL within {self.startup_timeout_s:g} s"
            ) from None
        except BaseException:
            await self.stop()
            raise
        self.url = url
        self._drain = asyncio.get_running_loop().create_task(self._drain_output(process))
        log.info("ngrok tunnel %s -> 127.0.0.1:%d", url, self.port)
        return url

    async def _read_url(self, process: asyncio.subprocess.Process) -> str:
        assert process.stdout is not None
        last_problem = ""
        while line := await process.stdout.readline():
            entry = _log_entry(line)
            if entry is None:
                last_problem = line.decode(errors="replace").strip() or last_problem
                continue
            url = entry.get("url")
            if entry.get("msg") == "started tunnel" and isinstance(url, str) and url:
                return url
            if str(entry.get("lvl", "")).lower() in _FAILURE_LEVELS:
                last_problem = str(entry.get("err") or entry.get("msg") or last_problem)
        code = await process.wait()
        reason = f": {self._redact(last_problem)}" if last_problem else ""
        raise ExposureError(f"ngrok exited with code {code} before starting a tunnel{reason}")

    async def _drain_output(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            if log.isEnabledFor(logging.DEBUG):
                log.debug("ngrok: %s", self._redact(line.decode(errors="replace").rstrip()))
        code = await process.wait()
        if not self._stopping:
            log.warning("ngrok exited unexpectedly (code %s); the webhook is unreachable", code)

    async def stop(self) -> None:
        """Kill ngrok (TERM, then KILL after a grace period); safe to call twice."""
        self._stopping = True
        process, self._process = self._process, None
        drain, self._drain = self._drain, None
        self.url = None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(_STOP_GRACE_S):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
