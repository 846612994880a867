"""Forwarded-header trust, host validation and signed-URL reconstruction (SPEC §4.5), sans-IO.

Carriers sign the URL they called, which behind a tunnel or proxy is not the URL this listener
saw. Forwarding headers can restore it, but anyone can send them, so they count only when the
configuration says a proxy we trust put them there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ForwardingPolicy",
    "client_ip",
    "forwarding_trusted",
    "host_name",
    "parse_host",
    "public_path_prefix",
    "public_request_url",
    "reconstruct_url",
    "split_path_and_query",
]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
# Checked in this order when forwarding is trusted; the ngrok bypass only reads the last two.
_FORWARDED_HOST_HEADERS = ("x-forwarded-host", "x-original-host", "ngrok-forwarded-host")
_NGROK_BYPASS_HEADERS = ("ngrok-forwarded-host", "x-forwarded-host")


def _ip(value: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _networks(entries: Iterable[str]) -> tuple[IpNetwork, ...]:
    networks: list[IpNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip().strip("[]"), strict=False))
        except ValueError:
            continue  # config validation reports bad entries; an unparsable one trusts nobody
    return tuple(networks)


def _is_loopback_bind(bind: str) -> bool:
    if bind == "localhost":
        return True
    address = _ip(bind)
    return address is not None and address.is_loopback


@dataclass(frozen=True, slots=True)
class ForwardingPolicy:
    """The §1.4 ``webhookSecurity``/``tunnel`` settings that decide forwarded-header trust."""

    allowed_hosts: tuple[str, ...] = ()
    trust_forwarding_headers: bool = False
    trusted_proxies: tuple[IpNetwork, ...] = ()
    #: ``tunnel.allowNgrokFreeTierLoopbackBypass`` with ``tunnel.provider: ngrok`` and a
    #: loopback ``serve.bind`` (the peer must still be loopback per request).
    ngrok_loopback_bypass: bool = False

    @classmethod
    def build(
        cls,
        *,
        allowed_hosts: Iterable[str] = (),
        trust_forwarding_headers: bool = False,
        trusted_proxy_ips: Iterable[str] = (),
        ngrok_loopback_bypass: bool = False,
    ) -> ForwardingPolicy:
        """A policy from plain config values (hosts lower-cased, proxies parsed as networks)."""
        hosts = tuple(h for h in (host_name(h.strip().lower()) for h in allowed_hosts) if h)
        return cls(
            allowed_hosts=hosts,
            trust_forwarding_headers=trust_forwarding_headers,
            trusted_proxies=_networks(trusted_proxy_ips),
            ngrok_loopback_bypass=ngrok_loopback_bypass,
        )

    @classmethod
    def from_config(cls, config: Any) -> ForwardingPolicy:
        """The policy of a ``VoicecallConfig``."""
        security = config.webhook_security
        tunnel = config.tunnel
        bypass = (
            tunnel.allow_ngrok_free_tier_loopback_bypass
            and tunnel.provider == "ngrok"
            and _is_loopback_bind(config.serve.bind)
        )
        return cls.build(
            allowed_hosts=security.allowed_hosts,
            trust_forwarding_headers=security.trust_forwarding_headers,
            trusted_proxy_ips=security.trusted_proxy_ips,
            ngrok_loopback_bypass=bypass,
        )

    def is_trusted_proxy(self, peer: str | None) -> bool:
        """Whether the socket peer is one of ``trustedProxyIPs``."""
        address = _ip(peer) if peer else None
        if address is None:
            return False
        return any(address.version == n.version and address in n for n in self.trusted_proxies)


def parse_host(value: str | None) -> str | None:
    """A validated ``host[:port]`` (lower-cased, first comma item), or None if it is unsafe.

    Accepts an RFC 1123 hostname or a bracketed IPv6 literal, with an optional port 1-65535;
    anything with userinfo (``@``), a path, spaces or other punctuation is refused.
    """
    if value is None:
        return None
    candidate = value.split(",", 1)[0].strip().lower()
    if not candidate or len(candidate) > 260:
        return None
    if candidate.startswith("["):
        end = candidate.find("]")
        if end < 0:
            return None
        literal, rest = candidate[1:end], candidate[end + 1 :]
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return None
    else:
        literal, sep, port = candidate.partition(":")
        rest = f":{port}" if sep else ""
        if len(literal) > 253 or not _HOSTNAME.fullmatch(literal):
            return None
    if rest:
        port = rest[1:]
        if not rest.startswith(":") or not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
            return None
    return candidate


def host_name(host: str) -> str:
    """The host without its port (IPv6 without brackets), for allow-list comparison."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") > 1:
        return host  # a bare IPv6 literal (allow-list entry)
    return host.split(":", 1)[0].rstrip(".")


def forwarding_trusted(policy: ForwardingPolicy, peer: str | None) -> bool:
    """§4.5: (allowedHosts or trustForwardingHeaders) and (no proxies configured or peer is one)."""
    if not (policy.allowed_hosts or policy.trust_forwarding_headers):
        return False
    return not policy.trusted_proxies or policy.is_trusted_proxy(peer)


def _ngrok_bypass(policy: ForwardingPolicy, peer: str | None) -> bool:
    address = _ip(peer) if peer else None
    return policy.ngrok_loopback_bypass and address is not None and address.is_loopback


def _forwarded_host(
    policy: ForwardingPolicy, headers: Mapping[str, str], names: tuple[str, ...]
) -> str | None:
    for name in names:
        host = parse_host(headers.get(name))
        if host is None:
            continue
        if policy.allowed_hosts and host_name(host) not in policy.allowed_hosts:
            continue
        return host
    return None


def _forwarded_scheme(headers: Mapping[str, str]) -> str:
    proto = headers.get("x-forwarded-proto", "").split(",", 1)[0].strip().lower()
    return proto if proto in ("http", "https") else "https"


def reconstruct_url(
    policy: ForwardingPolicy, *, peer: str | None, headers: Mapping[str, str], path_qs: str
) -> str | None:
    """The URL the caller used: trusted forwarded host/scheme, else ``https://{Host}``.

    ``headers`` has lower-case names; ``path_qs`` is the raw request target. None when no
    usable host is left (an invalid ``Host`` and no trusted forwarded host).
    """
    names: tuple[str, ...] = ()
    if forwarding_trusted(policy, peer):
        names = _FORWARDED_HOST_HEADERS
    elif _ngrok_bypass(policy, peer):
        names = _NGROK_BYPASS_HEADERS
    forwarded = _forwarded_host(policy, headers, names) if names else None
    if forwarded is not None:
        return f"{_forwarded_scheme(headers)}://{forwarded}{path_qs}"
    host = parse_host(headers.get("host"))
    if host is None:
        return None
    return f"https://{host}{path_qs}"


def split_path_and_query(path_qs: str) -> tuple[str, str | None]:
    """``/a?b=c`` → (``/a``, ``b=c``); the query is None when the target has no ``?``."""
    path, sep, query = path_qs.partition("?")
    return path, (query if sep else None)


def public_request_url(public_url: str, path_qs: str) -> str:
    """``publicUrl``'s scheme, host, port and path plus the request's raw query (SPEC §4.2)."""
    parts = urlsplit(public_url)
    _, query = split_path_and_query(path_qs)
    base = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
    return base if query is None else f"{base}?{query}"


def public_path_prefix(public_url: str | None, serve_path: str) -> str:
    """The part of ``publicUrl``'s path before a trailing ``serve.path`` (SPEC §4.6), or ``""``."""
    if not public_url:
        return ""
    path = urlsplit(public_url).path.rstrip("/")
    suffix = serve_path.rstrip("/")
    if suffix and path.endswith(suffix):
        return path[: -len(suffix)]
    return ""


def client_ip(policy: ForwardingPolicy, *, peer: str | None, headers: Mapping[str, str]) -> str:
    """The caller's IP for per-client caps: forwarded only from a trusted proxy, else the peer.

    With ``trustForwardingHeaders`` and the peer in ``trustedProxyIPs``: the right-most
    ``X-Forwarded-For`` hop that is not a trusted proxy, else ``X-Real-IP``.
    """
    fallback = peer or "unknown"
    if not (policy.trust_forwarding_headers and policy.is_trusted_proxy(peer)):
        return fallback
    hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if policy.is_trusted_proxy(hop):
            continue
        address = _ip(hop)
        if address is not None:
            return str(address)
        break  # a garbled hop past our proxies: do not look further left
    real = _ip(headers.get("x-real-ip", ""))
    return str(real) if real is not None else fallback
