"""Forwarded-header trust, host validation and signed-URL reconstruction (SPEC §4.5)."""

from __future__ import annotations

from typing import Any

import pytest

from voicecall.config import VoicecallConfig
from voicecall.server.forwarding import (
    ForwardingPolicy,
    client_ip,
    forwarding_trusted,
    parse_host,
    public_path_prefix,
    public_request_url,
    reconstruct_url,
)

HOST_CASES = [
    ("example.com", "example.com"),
    ("Voice.Example.COM:8443", "voice.example.com:8443"),
    (" a.example.com , evil.com", "a.example.com"),
    ("203.0.113.7:80", "203.0.113.7:80"),
    ("[::1]:3334", "[::1]:3334"),
    ("[2001:DB8::1]", "[2001:db8::1]"),
    ("user@evil.com", None),
    ("evil.com@good.example.com", None),
    ("good.example.com:443@evil.com", None),
    ("exa mple.com", None),
    ("example.com/path", None),
    ("example.com:0", None),
    ("example.com:65536", None),
    ("example.com:http", None),
    ("example.com:", None),
    ("-bad.example.com", None),
    ("bad-.example.com", None),
    ("a..example.com", None),
    ("::1", None),
    ("[::1", None),
    ("[not-ipv6]:80", None),
    ("[::1]x", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("raw", "expected"), HOST_CASES)
def test_parse_host(raw: str | None, expected: str | None) -> None:
    """Hosts are lower-cased and trimmed; userinfo, paths, bad ports and labels are refused."""
    assert parse_host(raw) == expected


LOCAL = {"host": "127.0.0.1:3334"}
PATH = "/voice/webhook?callId=c1&b=%20"

# (policy settings, socket peer, request headers, expected signed URL)
URL_CASES: list[tuple[str, dict[str, Any], str | None, dict[str, str], str | None]] = [
    ("untrusted by default", {}, "203.0.113.9", {**LOCAL, "x-forwarded-host": "evil.com"},
     f"https://127.0.0.1:3334{PATH}"),
    ("trustForwardingHeaders, any peer", {"trust_forwarding_headers": True}, "203.0.113.9",
     {**LOCAL, "x-forwarded-host": "voice.example.com", "x-forwarded-proto": "http"},
     f"http://voice.example.com{PATH}"),
    ("first proto value only", {"trust_forwarding_headers": True}, "203.0.113.9",
     {**LOCAL, "x-forwarded-host": "v.example.com", "x-forwarded-proto": "HTTP, https"},
     f"http://v.example.com{PATH}"),
    ("unknown proto means https", {"trust_forwarding_headers": True}, "203.0.113.9",
     {**LOCAL, "x-forwarded-host": "v.example.com", "x-forwarded-proto": "ftp"},
     f"https://v.example.com{PATH}"),
    ("allowedHosts match ignores port", {"allowed_hosts": ["Voice.Example.com"]}, "10.0.0.2",
     {**LOCAL, "x-forwarded-host": "voice.example.com:8443"},
     f"https://voice.example.com:8443{PATH}"),
    ("allowedHosts miss falls back to Host", {"allowed_hosts": ["voice.example.com"]}, "10.0.0.2",
     {**LOCAL, "x-forwarded-host": "evil.com"}, f"https://127.0.0.1:3334{PATH}"),
    ("allowedHosts: first allowed header wins", {"allowed_hosts": ["voice.example.com"]},
     "10.0.0.2",
     {**LOCAL, "x-forwarded-host": "evil.com", "x-original-host": "voice.example.com"},
     f"https://voice.example.com{PATH}"),
    ("host with @ skipped for the next header", {"trust_forwarding_headers": True}, "10.0.0.2",
     {**LOCAL, "x-forwarded-host": "voice.example.com@evil.com",
      "ngrok-forwarded-host": "abc.ngrok-free.app"}, f"https://abc.ngrok-free.app{PATH}"),
    ("X-Forwarded-Host beats the others", {"trust_forwarding_headers": True}, "10.0.0.2",
     {**LOCAL, "x-forwarded-host": "a.example.com", "x-original-host": "b.example.com",
      "ngrok-forwarded-host": "c.example.com"}, f"https://a.example.com{PATH}"),
    ("trusted proxy peer", {"trust_forwarding_headers": True, "trusted_proxy_ips": ["10.0.0.0/8"]},
     "10.1.2.3", {**LOCAL, "x-forwarded-host": "voice.example.com"},
     f"https://voice.example.com{PATH}"),
    ("peer outside trusted proxies",
     {"trust_forwarding_headers": True, "trusted_proxy_ips": ["10.0.0.0/8"]},
     "203.0.113.9", {**LOCAL, "x-forwarded-host": "voice.example.com"},
     f"https://127.0.0.1:3334{PATH}"),
    ("proxies configured, peer unknown",
     {"trust_forwarding_headers": True, "trusted_proxy_ips": ["10.0.0.0/8"]},
     None, {**LOCAL, "x-forwarded-host": "voice.example.com"}, f"https://127.0.0.1:3334{PATH}"),
    ("IPv4-mapped peer matches an IPv4 proxy",
     {"allowed_hosts": ["voice.example.com"], "trusted_proxy_ips": ["10.0.0.5"]},
     "::ffff:10.0.0.5", {**LOCAL, "x-forwarded-host": "voice.example.com"},
     f"https://voice.example.com{PATH}"),
    ("IPv6 proxy and IPv6 forwarded host",
     {"trust_forwarding_headers": True, "trusted_proxy_ips": ["2001:db8::/32"]},
     "2001:db8::7", {**LOCAL, "x-forwarded-host": "[2001:db8::1]:8443"},
     f"https://[2001:db8::1]:8443{PATH}"),
    ("proxies alone do not enable trust", {"trusted_proxy_ips": ["10.0.0.0/8"]}, "10.1.2.3",
     {**LOCAL, "x-forwarded-host": "voice.example.com"}, f"https://127.0.0.1:3334{PATH}"),
    ("IPv6 Host header", {}, "::1", {"host": "[::1]:3334"}, f"https://[::1]:3334{PATH}"),
    ("Host with @ and nothing trusted", {}, "127.0.0.1", {"host": "a@evil.com"}, None),
    ("no Host at all", {}, "127.0.0.1", {}, None),
    ("ngrok bypass from loopback", {"ngrok_loopback_bypass": True}, "127.0.0.1",
     {**LOCAL, "ngrok-forwarded-host": "abc.ngrok-free.app"}, f"https://abc.ngrok-free.app{PATH}"),
    ("ngrok bypass reads X-Forwarded-Host too", {"ngrok_loopback_bypass": True}, "::1",
     {**LOCAL, "x-forwarded-host": "abc.ngrok-free.app"}, f"https://abc.ngrok-free.app{PATH}"),
    ("ngrok bypass ignores X-Original-Host", {"ngrok_loopback_bypass": True}, "127.0.0.1",
     {**LOCAL, "x-original-host": "abc.ngrok-free.app"}, f"https://127.0.0.1:3334{PATH}"),
    ("ngrok bypass needs a loopback peer", {"ngrok_loopback_bypass": True}, "10.0.0.2",
     {**LOCAL, "ngrok-forwarded-host": "abc.ngrok-free.app"}, f"https://127.0.0.1:3334{PATH}"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "peer", "headers", "expected"),
    [case[1:] for case in URL_CASES],
    ids=[case[0] for case in URL_CASES],
)
def test_reconstruct_url(
    settings: dict[str, Any], peer: str | None, headers: dict[str, str], expected: str | None
) -> None:
    """Forwarded host and scheme count only under the §4.5 trust rules; else the Host header."""
    policy = ForwardingPolicy.build(**settings)
    assert reconstruct_url(policy, peer=peer, headers=headers, path_qs=PATH) == expected


def test_trust_requires_hosts_or_flag_and_a_trusted_peer() -> None:
    """Trust is (allowedHosts or trustForwardingHeaders) and (no proxies or peer is one)."""
    assert not forwarding_trusted(ForwardingPolicy.build(), "10.0.0.1")
    assert forwarding_trusted(ForwardingPolicy.build(allowed_hosts=["a.example"]), "1.2.3.4")
    proxied = ForwardingPolicy.build(trust_forwarding_headers=True, trusted_proxy_ips=["10.0.0.1"])
    assert forwarding_trusted(proxied, "10.0.0.1")
    assert not forwarding_trusted(proxied, "10.0.0.2")
    assert not forwarding_trusted(proxied, None)
    assert not forwarding_trusted(proxied, "not-an-ip")


def _config(**raw: Any) -> VoicecallConfig:
    return VoicecallConfig.model_validate(raw)


def test_ngrok_bypass_only_with_ngrok_tunnel_and_loopback_bind() -> None:
    """The free-tier bypass needs tunnel.provider ngrok and a loopback serve.bind."""
    flag = {"allowNgrokFreeTierLoopbackBypass": True}
    on = _config(tunnel={"provider": "ngrok", **flag})
    assert ForwardingPolicy.from_config(on).ngrok_loopback_bypass
    no_ngrok = _config(tunnel={"provider": "none", **flag})
    assert not ForwardingPolicy.from_config(no_ngrok).ngrok_loopback_bypass
    public_bind = _config(tunnel={"provider": "ngrok", **flag}, serve={"bind": "0.0.0.0"})
    assert not ForwardingPolicy.from_config(public_bind).ngrok_loopback_bypass
    assert not ForwardingPolicy.from_config(
        _config(tunnel={"provider": "ngrok"})
    ).ngrok_loopback_bypass


def test_policy_from_config_reads_webhook_security() -> None:
    """allowedHosts, trustForwardingHeaders and trustedProxyIPs come from webhookSecurity."""
    config = _config(
        webhookSecurity={
            "allowedHosts": ["Voice.Example.com:443"],
            "trustForwardingHeaders": True,
            "trustedProxyIPs": ["10.0.0.0/8", "::1"],
        }
    )
    policy = ForwardingPolicy.from_config(config)
    assert policy.allowed_hosts == ("voice.example.com",)
    assert policy.trust_forwarding_headers
    assert policy.is_trusted_proxy("10.9.9.9") and policy.is_trusted_proxy("::1")
    assert not policy.is_trusted_proxy("11.0.0.1")


PROXIED = {"trust_forwarding_headers": True, "trusted_proxy_ips": ["10.0.0.0/8"]}

# (policy settings, socket peer, headers, expected client IP)
CLIENT_CASES: list[tuple[str, dict[str, Any], str | None, dict[str, str], str]] = [
    ("no trust: the peer", {}, "203.0.113.9", {"x-forwarded-for": "198.51.100.1"}, "203.0.113.9"),
    ("allowedHosts alone: the peer",
     {"allowed_hosts": ["a.example"], "trusted_proxy_ips": ["10.0.0.1"]}, "10.0.0.1",
     {"x-forwarded-for": "198.51.100.1"}, "10.0.0.1"),
    ("trust without proxies: the peer", {"trust_forwarding_headers": True}, "10.0.0.1",
     {"x-forwarded-for": "198.51.100.1"}, "10.0.0.1"),
    ("peer not a proxy: the peer", PROXIED, "203.0.113.9", {"x-forwarded-for": "198.51.100.1"},
     "203.0.113.9"),
    ("right-most untrusted hop", PROXIED, "10.0.0.1",
     {"x-forwarded-for": "1.1.1.1, 198.51.100.1, 10.0.0.7"}, "198.51.100.1"),
    ("all hops are proxies: X-Real-IP", PROXIED, "10.0.0.1",
     {"x-forwarded-for": "10.0.0.8, 10.0.0.7", "x-real-ip": "198.51.100.2"}, "198.51.100.2"),
    ("X-Real-IP alone", PROXIED, "10.0.0.1", {"x-real-ip": "2001:db8::5"}, "2001:db8::5"),
    ("garbled hop and no X-Real-IP: the peer", PROXIED, "10.0.0.1",
     {"x-forwarded-for": "1.1.1.1, garbage"}, "10.0.0.1"),
    ("nothing forwarded: the peer", PROXIED, "10.0.0.1", {}, "10.0.0.1"),
    ("no peer at all", {}, None, {}, "unknown"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("settings", "peer", "headers", "expected"),
    [case[1:] for case in CLIENT_CASES],
    ids=[case[0] for case in CLIENT_CASES],
)
def test_client_ip(
    settings: dict[str, Any], peer: str | None, headers: dict[str, str], expected: str
) -> None:
    """Forwarded client IPs count only from a trusted proxy with trustForwardingHeaders."""
    policy = ForwardingPolicy.build(**settings)
    assert client_ip(policy, peer=peer, headers=headers) == expected


@pytest.mark.parametrize(
    ("public_url", "path_qs", "expected"),
    [
        ("https://voice.example.com/voice/webhook", "/voice/webhook?a=1&b=%20",
         "https://voice.example.com/voice/webhook?a=1&b=%20"),
        ("https://voice.example.com:8443/base/voice/webhook?ignored=1", "/voice/webhook",
         "https://voice.example.com:8443/base/voice/webhook"),
        ("https://voice.example.com/voice/webhook", "/elsewhere?x",
         "https://voice.example.com/voice/webhook?x"),
        ("http://[2001:db8::1]:8080/voice/webhook", "/voice/webhook?z=9",
         "http://[2001:db8::1]:8080/voice/webhook?z=9"),
    ],
)  # fmt: skip
def test_public_request_url(public_url: str, path_qs: str, expected: str) -> None:
    """With publicUrl the signed URL is its scheme, host, port and path plus the raw query."""
    assert public_request_url(public_url, path_qs) == expected


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        (None, ""),
        ("https://voice.example.com/voice/webhook", ""),
        ("https://voice.example.com/base/voice/webhook/", "/base"),
        ("https://voice.example.com/a/b/voice/webhook", "/a/b"),
        ("https://voice.example.com/hooks", ""),
    ],
)
def test_public_path_prefix(public_url: str | None, expected: str) -> None:
    """The public path prefix is publicUrl's path before a trailing serve.path."""
    assert public_path_prefix(public_url, "/voice/webhook") == expected
