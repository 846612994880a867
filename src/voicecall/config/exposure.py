"""The public-URL rule (SPEC §4.6): webhook URLs a carrier cannot reach (literal check, no DNS)."""

from __future__ import annotations

import ipaddress
import re
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

# One part of an inet_aton address: hex with 0x, octal with a leading 0, else decimal.
_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def _inet_aton(name: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a resolver reads `name` as, the way inet_aton does, else None.

    Resolvers accept shorthand literals that `ipaddress` refuses: 1-4 parts, each decimal,
    octal (leading 0) or hex (0x); the last part fills the remaining bytes (`127.1` is
    127.0.0.1, `2130706433` and `0x7f000001` too). Out-of-range parts make it a name.
    """
    parts = name.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.fullmatch(p) for p in parts):
        return None
    values = [
        int(p, 16) if p[1:2] in ("x", "X") else int(p, 8 if p[0] == "0" else 10) for p in parts
    ]
    *leading, last = values
    last_bits = 8 * (5 - len(values))
    if any(v > 0xFF for v in leading) or last >= 1 << last_bits:
        return None
    number = 0
    for value in leading:
        number = number << 8 | value
    return ipaddress.IPv4Address(number << last_bits | last)


def is_private_host(host: str) -> bool:
    """True for local names and loopback/private/link-local literals, incl. IPv4-mapped forms.

    IPv4 literals count in every shorthand a resolver accepts (`127.1`, `0x7f000001`, `0177.0.0.1`).
    """
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith((".localhost", ".local")):
        return True
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = _inet_aton(name)
    if address is None:
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
