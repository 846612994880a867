"""The gateway's exposure steps in SPEC §4.7 order: tunnel, then Tailscale, then the URL."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from voicecall.config.models import VoicecallConfig
from voicecall.exposure.ngrok import STARTUP_TIMEOUT_S, NgrokTunnel
from voicecall.exposure.tailscale import TailscaleExposure, tailscale_mode
from voicecall.exposure.webhook_url import resolve_webhook_url

__all__ = ["WebhookExposure"]

log = logging.getLogger(__name__)


class WebhookExposure:
    """Starts ngrok and/or Tailscale routes for the bound webhook port and resolves the URL.

    A failure stops whatever this object already started before the error propagates;
    ``stop()`` is idempotent and ``start()`` twice returns the same URL.
    """

    def __init__(
        self,
        config: VoicecallConfig,
        env: Mapping[str, str] | None = None,
        *,
        ngrok_startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.config = config
        self._env = env
        self._ngrok_startup_timeout_s = ngrok_startup_timeout_s
        self._ngrok: NgrokTunnel | None = None
        self._tailscale: TailscaleExposure | None = None
        self.url: str | None = None

    async def start(self, local_port: int) -> str:
        """Run the configured exposure for `local_port`; returns the §4.6 webhook URL."""
        if self.url is not None:
            return self.url
        config = self.config
        tunnel_url = tailscale_url = None
        try:
            if config.tunnel.provider == "ngrok":
                self._ngrok = NgrokTunnel(
                    local_port,
                    auth_token=config.tunnel.ngrok_auth_token,
                    domain=config.tunnel.ngrok_domain,
                    env=self._env,
                    startup_timeout_s=self._ngrok_startup_timeout_s,
                )
                tunnel_url = await self._ngrok.start()
            mode = tailscale_mode(config)
            if mode is not None:
                self._tailscale = TailscaleExposure(config, mode, self._env)
                tailscale_url = await self._tailscale.start(local_port)
        except BaseException:
            await self.stop()
            raise
        self.url = resolve_webhook_url(
            config, tunnel_url=tunnel_url, tailscale_url=tailscale_url, port=local_port
        )
        return self.url

    async def stop(self) -> None:
        """Unmount Tailscale routes, then kill ngrok; safe to call twice or before start."""
        tailscale, self._tailscale = self._tailscale, None
        ngrok, self._ngrok = self._ngrok, None
        self.url = None
        try:
            if tailscale is not None:
                await tailscale.stop()
        finally:
            if ngrok is not None:
                await ngrok.stop()
