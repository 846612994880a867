"""The public-URL rule (SPEC §4.6): webhook URLs a carrier cannot reach (literal check, no DNS)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_private_host", "private_webhook_message"]

_PRIVATE_NETS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/32",
        "::/128",
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)


def is_private_host(host: str) -> bool:
    """True for local names and loopback/private/link-local literals, incl. IPv4-mapped forms."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith((".localhost", ".local")):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in _PRIVATE_NETS)


def private_webhook_message(url: str) -> str | None:
    """The §4.6 refusal text when `url` points at a local or private host, else None."""
    host = urlsplit(url).hostname or ""
    if not is_private_host(host):
        return None
    return (
        f"webhook URL {url} points at a local or private address; carriers cannot reach it."
        " Set publicUrl to a public https URL or configure tunnel/tailscale"
    )
