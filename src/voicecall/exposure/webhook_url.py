"""Where carriers reach us: webhook URL resolution and the public-URL rule (SPEC §4.6)."""

from __future__ import annotations

from urllib.parse import urlsplit

from voicecall.config.exposure import is_private_host, private_webhook_message
from voicecall.config.models import VoicecallConfig
from voicecall.config.validate import ExposureKind, exposure_kind

__all__ = [
    "REAL_CARRIERS",
    "ExposureKind",
    "exposure_kind",
    "is_private_host",
    "local_webhook_url",
    "private_webhook_message",
    "public_path_prefix",
    "public_route_url",
    "resolve_webhook_url",
    "stream_host",
    "tailscale_public_url",
    "webhook_url_problem",
]

REAL_CARRIERS = frozenset({"twilio", "telnyx", "plivo"})


def _url_host(host: str) -> str:
    # An IPv6 literal needs brackets inside a URL.
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def local_webhook_url(config: VoicecallConfig, port: int | None = None) -> str:
    """`http://{serve.bind}:{port}{serve.path}`; `port` is the bound one when serve.port is 0."""
    bound = config.serve.port if port is None else port
    return f"http://{_url_host(config.serve.bind)}:{bound}{config.serve.path}"


def tailscale_public_url(dns_name: str, https_port: int, path: str) -> str:
    """`https://<dnsName>[:<port> if not 443]<path>` (SPEC §4.7)."""
    suffix = "" if https_port == 443 else f":{https_port}"
    return f"https://{dns_name.rstrip('.')}{suffix}{path}"


def resolve_webhook_url(
    config: VoicecallConfig,
    *,
    tunnel_url: str | None = None,
    tailscale_url: str | None = None,
    port: int | None = None,
) -> str:
    """The webhook URL carriers are given and sign against (SPEC §4.6).

    `publicUrl` → tunnel URL (ngrok's base URL) + `serve.path` → Tailscale URL (already
    carrying its path) → the local listener URL. `port` is the bound webhook port.
    """
    if config.public_url:
        return config.public_url
    if tunnel_url:
        return tunnel_url.rstrip("/") + config.serve.path
    if tailscale_url:
        return tailscale_url
    return local_webhook_url(config, port)


def webhook_url_problem(config: VoicecallConfig, url: str) -> str | None:
    """The §4.6 refusal when a real carrier would be given a local/private URL, else None."""
    if config.provider not in REAL_CARRIERS:
        return None
    if config.webhook_security.allow_private_webhook_url:
        return None
    return private_webhook_message(url)


def _trimmed(path: str) -> str:
    return path.rstrip("/")


def public_path_prefix(config: VoicecallConfig) -> str:
    """The part of `publicUrl`'s path before a trailing `serve.path` (a reverse-proxy prefix).

    Empty without `publicUrl`, or when its path does not end with `serve.path`.
    """
    if not config.public_url:
        return ""
    public_path = _trimmed(urlsplit(config.public_url).path)
    serve_path = _trimmed(config.serve.path)
    if not serve_path:
        return public_path
    if public_path == serve_path:
        return ""
    if public_path.endswith(serve_path):
        return public_path[: -len(serve_path)]
    return ""


def stream_host(public_url: str | None, request_host: str | None = None) -> str | None:
    """The host (with port, if any) for media-stream URLs: the public URL's, else `Host`."""
    if public_url:
        netloc = urlsplit(public_url).netloc
        host = netloc.rpartition("@")[2]
        if host:
            return host
    return request_host or None


def public_route_url(
    webhook_url: str,
    route_path: str,
    *,
    prefix: str = "",
    websocket: bool = False,
    request_host: str | None = None,
) -> str:
    """An absolute URL for one of our routes (stream, hold music) next to `webhook_url`.

    The scheme follows the webhook URL (`https`→`wss` when `websocket`), the host is
    `stream_host`, and the public path prefix goes in front of `route_path`.
    """
    secure = urlsplit(webhook_url).scheme == "https"
    schemes = ("wss", "ws") if websocket else ("https", "http")
    scheme = schemes[0] if secure else schemes[1]
    host = stream_host(webhook_url, request_host) or ""
    return f"{scheme}://{host}{_trimmed(prefix)}{route_path}"
