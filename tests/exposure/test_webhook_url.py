"""Webhook URL resolution, the public-URL rule and the route-URL helpers (SPEC §4.6)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.config import VoicecallConfig
from voicecall.exposure import (
    exposure_kind,
    is_private_host,
    public_path_prefix,
    public_route_url,
    resolve_webhook_url,
    stream_host,
    tailscale_public_url,
    webhook_url_problem,
)

REFUSAL = (
    "webhook URL {url} points at a local or private address; carriers cannot reach it."
    " Set publicUrl to a public https URL or configure tunnel/tailscale"
)


def config(**data: Any) -> VoicecallConfig:
    return VoicecallConfig.model_validate(data)


PRIVATE_HOSTS = [
    "localhost",
    "LOCALHOST",
    "localhost.",
    "api.localhost",
    "printer.local",
    "a.b.local",
    "0.0.0.0",
    "::",
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.10",
    "169.254.169.254",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "febf::1",
    "::ffff:127.0.0.1",
    "::ffff:10.1.2.3",
    "::ffff:192.168.0.1",
    "::ffff:169.254.1.1",
    "::ffff:7f00:1",
    "::ffff:0.0.0.0",
]
PUBLIC_HOSTS = [
    "example.com",
    "abc.ngrok-free.app",
    "localhost.example.com",
    "local.example.com",
    "notlocal",
    "8.8.8.8",
    "172.15.255.255",
    "172.32.0.1",
    "192.169.0.1",
    "11.0.0.1",
    "169.253.1.1",
    "1.0.0.0",
    "2001:4860:4860::8888",
    "fec0::1",
    "::ffff:8.8.8.8",
]


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_refused_hosts(host: str) -> None:
    """Local names and loopback/private/link-local/unique-local literals are refused."""
    assert is_private_host(host)
    if ":" in host:
        assert is_private_host(f"[{host}]")


@pytest.mark.parametrize("host", PUBLIC_HOSTS)
def test_public_hosts(host: str) -> None:
    """Public names and addresses, and look-alikes of local names, pass the rule."""
    assert not is_private_host(host)


REFUSED_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "0.0.0.0/32",
    )
]
REFUSED_V6 = [ipaddress.ip_network(n) for n in ("fc00::/7", "fe80::/10", "::1/128", "::/128")]


def _expected_private(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _expected_private(address.ipv4_mapped)
        return any(address in net for net in REFUSED_V6)
    return any(address in net for net in REFUSED_NETWORKS)


@given(st.ip_addresses())
def test_ip_literals_match_the_refused_ranges(address: Any) -> None:
    """Any IP literal is refused exactly when it lies in a §4.6 range (IPv4-mapped included)."""
    host = f"[{address}]" if address.version == 6 else str(address)
    assert is_private_host(host) == _expected_private(address)
    url = f"https://{host}/voice/webhook"
    problem = webhook_url_problem(config(provider="twilio"), url)
    assert (problem == REFUSAL.format(url=url)) == _expected_private(address)


@given(st.ip_addresses(v=4))
def test_ipv4_mapped_form_is_judged_like_the_ipv4_address(address: Any) -> None:
    """`::ffff:a.b.c.d` gets the same verdict as `a.b.c.d`."""
    assert is_private_host(f"[::ffff:{address}]") == is_private_host(str(address))


# ---- IPv4 shorthand literals (inet_aton forms: 1-4 parts, decimal / 0-octal / 0x-hex) --------

SHORTHAND_REFUSED = [
    "127.1",
    "127.0.1",
    "0x7f000001",
    "0X7F000001",
    "2130706433",
    "0177.0.0.1",
    "0177.1",
    "0x7f.1",
    "127.000.000.001",
    "000000000177.0x0000001",
    "127.1.",
    "10.1",
    "012.1",
    "167772161",
    "0xa.0xb.0xc.0xd",
    "172.16.1",
    "0xac100001",
    "192.168.257",
    "169.254.43518",
    "0",
    "00",
    "0x0",
    "0.0",
]
SHORTHAND_NOT_ADDRESSES_OR_PUBLIC = [
    "8.8",
    "1.1",
    "134744072",
    "0x08080808",
    "4294967296",
    "127.16777216",
    "256.1",
    "08.0.0.1",
    "0x",
    "0x7g",
    "1.2.3.4.5",
    "127..1",
    "127.1.example.com",
    "0x7f000001.example.com",
]


@pytest.mark.parametrize("host", SHORTHAND_REFUSED)
def test_ipv4_shorthand_literals_are_refused(host: str) -> None:
    """A shorthand spelling of a loopback/private address is refused like the dotted quad."""
    assert is_private_host(host)
    url = f"http://{host}:8080/voice/webhook"
    assert webhook_url_problem(config(provider="twilio"), url) == REFUSAL.format(url=url)


@pytest.mark.parametrize("host", SHORTHAND_NOT_ADDRESSES_OR_PUBLIC)
def test_public_or_malformed_shorthands_pass(host: str) -> None:
    """Shorthands of public addresses, and numeric-looking names no resolver reads as IPv4, pass."""
    assert not is_private_host(host)


@st.composite
def ipv4_shorthands(draw: st.DrawFn) -> tuple[ipaddress.IPv4Address, str]:
    """An IPv4 address and one of its inet_aton spellings (1-4 parts, any radix, zero-padded)."""
    address = ipaddress.IPv4Address(int(draw(st.ip_addresses(v=4))))
    count = draw(st.integers(1, 4))
    last_bits = 8 * (5 - count)
    number = int(address)
    values = [(number >> (8 * (3 - i))) & 0xFF for i in range(count - 1)]
    values.append(number & ((1 << last_bits) - 1))
    parts = []
    for value in values:
        radix = draw(st.sampled_from(["dec", "oct", "0x", "0X"]))
        zeros = "0" * draw(st.integers(0, 3))
        if radix == "dec":
            parts.append(str(value))
        elif radix == "oct":
            parts.append(f"0{zeros}{value:o}")
        else:
            parts.append(f"{radix}{zeros}{value:x}")
    return address, ".".join(parts)


@given(ipv4_shorthands())
def test_any_ipv4_spelling_gets_the_verdict_of_its_address(
    case: tuple[ipaddress.IPv4Address, str],
) -> None:
    """Every inet_aton spelling of an IPv4 address is refused exactly when that address is."""
    address, host = case
    assert socket.inet_aton(host) == address.packed  # the spelling really means this address
    assert is_private_host(host) == _expected_private(address)


@given(
    st.from_regex(r"(0[xX]?)?[0-9a-fA-F]{0,9}(\.(0[xX]?)?[0-9a-fA-F]{0,9}){0,4}\.?", fullmatch=True)
)
def test_numeric_hosts_agree_with_inet_aton(host: str) -> None:
    """A numeric-looking host is refused exactly when inet_aton reads it as a refused address."""
    try:
        packed = socket.inet_aton(host.rstrip("."))
    except OSError:
        expected = False
    else:
        expected = _expected_private(ipaddress.IPv4Address(packed))
    assert is_private_host(host) == expected


def test_resolution_order() -> None:
    """publicUrl wins, then the tunnel URL plus serve.path, then Tailscale, then the listener."""
    base = {"serve": {"path": "/hooks/in", "port": 4000, "bind": "127.0.0.1"}}
    with_public = config(publicUrl="https://voice.example.com/p/hooks/in", **base)
    plain = config(**base)
    assert (
        resolve_webhook_url(with_public, tunnel_url="https://a.ngrok.app", tailscale_url="x")
        == "https://voice.example.com/p/hooks/in"
    )
    assert (
        resolve_webhook_url(plain, tunnel_url="https://a.ngrok.app/", tailscale_url="x")
        == "https://a.ngrok.app/hooks/in"
    )
    assert (
        resolve_webhook_url(plain, tailscale_url="https://node.ts.net/hooks/in")
        == "https://node.ts.net/hooks/in"
    )
    assert resolve_webhook_url(plain) == "http://127.0.0.1:4000/hooks/in"
    assert resolve_webhook_url(plain, port=4555) == "http://127.0.0.1:4555/hooks/in"


def test_local_fallback_brackets_ipv6_binds() -> None:
    """An IPv6 bind address becomes a bracketed URL host."""
    assert resolve_webhook_url(config(serve={"bind": "::1"})) == "http://[::1]:3334/voice/webhook"


def test_problem_only_for_real_carriers_without_the_escape_hatch() -> None:
    """Real carriers get the refusal; mock and allowPrivateWebhookUrl do not."""
    url = "http://127.0.0.1:3334/voice/webhook"
    for provider in ("twilio", "telnyx", "plivo"):
        assert webhook_url_problem(config(provider=provider), url) == REFUSAL.format(url=url)
    assert webhook_url_problem(config(provider="mock"), url) is None
    allowed = config(provider="plivo", webhookSecurity={"allowPrivateWebhookUrl": True})
    assert webhook_url_problem(allowed, url) is None
    assert webhook_url_problem(config(provider="twilio"), "https://x.example/voice/webhook") is None


def test_exposure_kind_prefers_tunnel_provider() -> None:
    """tunnel.provider decides; legacy tailscale.mode applies when the tunnel is none."""
    assert exposure_kind(config()) is None
    assert exposure_kind(config(tunnel={"provider": "ngrok"}, tailscale={"mode": "funnel"})) == (
        "ngrok"
    )
    assert exposure_kind(config(tailscale={"mode": "serve"})) == "tailscale-serve"
    assert exposure_kind(config(tailscale={"mode": "funnel"})) == "tailscale-funnel"


@pytest.mark.parametrize(
    ("public_url", "serve_path", "prefix"),
    [
        (None, "/voice/webhook", ""),
        ("https://x.example/voice/webhook", "/voice/webhook", ""),
        ("https://x.example/proxy/voice/webhook", "/voice/webhook", "/proxy"),
        ("https://x.example/a/b/voice/webhook/", "/voice/webhook", "/a/b"),
        ("https://x.example/hooks", "/voice/webhook", ""),
        ("https://x.example/p/hook", "/hook/", "/p"),
    ],
)
def test_public_path_prefix(public_url: str | None, serve_path: str, prefix: str) -> None:
    """The prefix is what publicUrl's path carries in front of a trailing serve.path."""
    data: dict[str, Any] = {"serve": {"path": serve_path}}
    if public_url:
        data["publicUrl"] = public_url
    assert public_path_prefix(config(**data)) == prefix


def test_stream_host_and_route_urls() -> None:
    """Stream URLs use the public host (else the request Host), wss for https, and the prefix."""
    assert stream_host("https://voice.example.com:8443/voice/webhook") == "voice.example.com:8443"
    assert stream_host(None, "req.example.com") == "req.example.com"
    assert stream_host(None) is None
    assert (
        public_route_url(
            "https://voice.example.com/px/voice/webhook",
            "/voice/stream",
            prefix="/px",
            websocket=True,
        )
        == "wss://voice.example.com/px/voice/stream"
    )
    assert (
        public_route_url("http://127.0.0.1:9000/voice/webhook", "/voice/hold-music")
        == "http://127.0.0.1:9000/voice/hold-music"
    )
    assert (
        public_route_url("http://127.0.0.1:9000/w", "/voice/stream", websocket=True)
        == "ws://127.0.0.1:9000/voice/stream"
    )


def test_tailscale_public_url_port_suffix() -> None:
    """Port 443 is left out of the Tailscale URL; other Funnel ports are kept."""
    assert tailscale_public_url("node.tail1.ts.net.", 443, "/voice/webhook") == (
        "https://node.tail1.ts.net/voice/webhook"
    )
    assert (
        tailscale_public_url("node.tail1.ts.net", 8443, "/v") == "https://node.tail1.ts.net:8443/v"
    )
