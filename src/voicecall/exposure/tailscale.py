"""The `tailscale` CLI: node status, and serve/funnel routes mounted with rollback (SPEC §4.7)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson

from voicecall.config.models import VoicecallConfig
from voicecall.config.validate import TAILSCALE_INSTALL_HINT
from voicecall.exposure.errors import ExposureError
from voicecall.exposure.webhook_url import tailscale_public_url

__all__ = [
    "TAILSCALE_INSTALL_HINT",
    "TailscaleExposure",
    "TailscaleMode",
    "TailscaleNode",
    "TailscaleRoutes",
    "enable_url",
    "find_tailscale",
    "mount_argv",
    "stream_paths",
    "tailscale_mode",
    "tailscale_status",
    "unmount_argv",
]

log = logging.getLogger(__name__)

TailscaleMode = Literal["serve", "funnel"]


@dataclass(frozen=True)
class TailscaleNode:
    """This machine on the tailnet: its MagicDNS name (no trailing dot) and node id."""

    dns_name: str
    id: str


def tailscale_mode(config: VoicecallConfig) -> TailscaleMode | None:
    """serve/funnel from `tunnel.provider` (tailscale-*), else from legacy `tailscale.mode`."""
    provider = config.tunnel.provider
    if provider == "tailscale-serve":
        return "serve"
    if provider == "tailscale-funnel":
        return "funnel"
    if provider == "none" and config.tailscale.mode != "off":
        return config.tailscale.mode
    return None


def stream_paths(config: VoicecallConfig) -> list[str]:
    """The media-stream paths to expose: classic and realtime, when enabled."""
    paths: list[str] = []
    if config.streaming.enabled:
        paths.append(config.streaming.stream_path)
    if config.realtime.enabled and config.realtime.stream_path not in paths:
        paths.append(config.realtime.stream_path)
    return paths


def enable_url(mode: str, node_id: str) -> str:
    """Where a tailnet admin enables serve/funnel for this node."""
    return f"https://login.tailscale.com/f/{mode}?node={node_id}"


def find_tailscale(env: Mapping[str, str] | None = None) -> str:
    """The `tailscale` binary on PATH, or an ExposureError naming what to install."""
    path = (os.environ if env is None else env).get("PATH")
    binary = shutil.which("tailscale", path=path)
    if binary is None:
        raise ExposureError(TAILSCALE_INSTALL_HINT)
    return binary


async def _run(argv: Sequence[str], env: Mapping[str, str] | None) -> tuple[int, str]:
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=None if env is None else dict(env),
        )
    except OSError as exc:
        return 127, str(exc)
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace").strip()


async def tailscale_status(
    binary: str, env: Mapping[str, str] | None = None
) -> TailscaleNode | None:
    """`tailscale status --json` → Self.DNSName and Self.ID; None when Tailscale cannot say."""
    code, text = await _run([binary, "status", "--json"], env)
    if code != 0:
        return None
    try:
        node = orjson.loads(text)["Self"]
        dns_name, node_id = str(node["DNSName"]).rstrip("."), str(node["ID"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not dns_name or not node_id:
        return None
    return TailscaleNode(dns_name=dns_name, id=node_id)


def mount_argv(
    binary: str, mode: TailscaleMode, https_port: int, public_path: str, target_url: str
) -> list[str]:
    """`tailscale <mode> --bg --yes [--https <port>] --set-path <path> <target>`."""
    argv = [binary, mode, "--bg", "--yes"]
    if https_port != 443:
        argv += ["--https", str(https_port)]
    return [*argv, "--set-path", public_path, target_url]


def unmount_argv(binary: str, mode: TailscaleMode, https_port: int, public_path: str) -> list[str]:
    """`tailscale <mode> --bg --yes --https <port> --set-path <path> off`."""
    https = ["--https", str(https_port)]
    return [binary, mode, "--bg", "--yes", *https, "--set-path", public_path, "off"]


class TailscaleRoutes:
    """Tailscale routes public path → `http://127.0.0.1:<port><local path>`, all or none.

    ``mount()`` unmounts the routes it already mounted when a later one fails, then raises
    ExposureError carrying Tailscale's output. ``unmount()`` removes whatever is mounted.
    """

    def __init__(
        self,
        binary: str,
        mode: TailscaleMode,
        *,
        https_port: int,
        local_port: int,
        routes: Sequence[tuple[str, str]],
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.mode = mode
        self.https_port = https_port
        self.local_port = local_port
        self.routes = list(routes)
        self._env = env
        self.mounted: list[str] = []

    async def mount(self) -> None:
        """Mount every route in order; on failure roll back and raise."""
        for public_path, local_path in self.routes:
            target = f"http://127.0.0.1:{self.local_port}{local_path}"
            argv = mount_argv(self.binary, self.mode, self.https_port, public_path, target)
            code, output = await _run(argv, self._env)
            if code != 0:
                await self.unmount()
                raise ExposureError(
                    f"tailscale {self.mode} failed for {public_path}: "
                    + (output or f"exit code {code}"),
                    output=output,
                )
            self.mounted.append(public_path)

    async def unmount(self) -> list[str]:
        """Remove mounted routes, newest first; returns the paths Tailscale refused to remove."""
        failed: list[str] = []
        while self.mounted:
            public_path = self.mounted.pop()
            argv = unmount_argv(self.binary, self.mode, self.https_port, public_path)
            code, output = await _run(argv, self._env)
            if code != 0:
                log.warning("tailscale could not unmount %s: %s", public_path, output)
                failed.append(public_path)
        return failed


class TailscaleExposure:
    """The gateway's Tailscale step: status, mount the webhook and stream paths, the public URL."""

    def __init__(
        self, config: VoicecallConfig, mode: TailscaleMode, env: Mapping[str, str] | None = None
    ) -> None:
        self.config = config
        self.mode = mode
        self._env = env
        self._routes: TailscaleRoutes | None = None
        self.url: str | None = None

    async def start(self, local_port: int) -> str:
        """Mount the routes and return `https://<dnsName>[:port]<tailscale.path>`."""
        if self.url is not None:
            return self.url
        binary = find_tailscale(self._env)
        node = await tailscale_status(binary, self._env)
        if node is None:
            raise ExposureError(
                "tailscale is unavailable (tailscale status --json failed);"
                " is tailscaled running and logged in?"
            )
        config = self.config
        routes = [(config.tailscale.path, config.serve.path)]
        routes += [(path, path) for path in stream_paths(config)]
        self._routes = TailscaleRoutes(
            binary,
            self.mode,
            https_port=config.tailscale.port,
            local_port=local_port,
            routes=routes,
            env=self._env,
        )
        try:
            await self._routes.mount()
        except ExposureError as exc:
            self._routes = None
            raise ExposureError(
                f"{exc} (enable it at {enable_url(self.mode, node.id)})", output=exc.output
            ) from None
        self.url = tailscale_public_url(node.dns_name, config.tailscale.port, config.tailscale.path)
        log.info("tailscale %s: %s -> 127.0.0.1:%d", self.mode, self.url, local_port)
        return self.url

    async def stop(self) -> None:
        """Unmount the routes; safe to call twice."""
        routes, self._routes = self._routes, None
        self.url = None
        if routes is not None:
            await routes.unmount()
