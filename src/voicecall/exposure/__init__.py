"""Exposure of the webhook listener: the public URL carriers use, ngrok and Tailscale."""

from __future__ import annotations

from voicecall.exposure.errors import ExposureError
from voicecall.exposure.exposer import WebhookExposure
from voicecall.exposure.ngrok import NgrokTunnel, is_ngrok_host
from voicecall.exposure.tailscale import (
    TailscaleExposure,
    TailscaleNode,
    TailscaleRoutes,
    find_tailscale,
    tailscale_mode,
    tailscale_status,
)
from voicecall.exposure.webhook_url import (
    REAL_CARRIERS,
    ExposureKind,
    exposure_kind,
    is_private_host,
    local_webhook_url,
    private_webhook_message,
    public_path_prefix,
    public_route_url,
    resolve_webhook_url,
    stream_host,
    tailscale_public_url,
    webhook_url_problem,
)

__all__ = [
    "REAL_CARRIERS",
    "ExposureError",
    "ExposureKind",
    "NgrokTunnel",
    "TailscaleExposure",
    "TailscaleNode",
    "TailscaleRoutes",
    "WebhookExposure",
    "exposure_kind",
    "find_tailscale",
    "is_ngrok_host",
    "is_private_host",
    "local_webhook_url",
    "private_webhook_message",
    "public_path_prefix",
    "public_route_url",
    "resolve_webhook_url",
    "stream_host",
    "tailscale_mode",
    "tailscale_public_url",
    "tailscale_status",
    "webhook_url_problem",
]
