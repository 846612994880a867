"""Twilio webhook signatures: the SDK vectors, port variants, bodySHA256 and the SDK oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from voicecall.carriers.twilio.webhook import compute_signature, request_key, verify_signature

# A copy of protocols/vectors/twilio_signature.json (twilio-python's test vectors).
VECTORS = json.loads((Path(__file__).parent / "twilio_signature.json").read_text())
TOKEN = VECTORS["auth_token"]


def _query(url: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in urlsplit(url).query.split("&") if "=" in pair)


def _check(url: str, params: list[tuple[str, str]], signature: str, token: str = TOKEN) -> bool:
    body = urlencode(params).encode()
    return verify_signature(token, url=url, signature=signature, body=body, query=_query(url)).ok


def _pairs(case: dict[str, Any]) -> list[tuple[str, str]]:
    if "params_multi" in case:
        return [(str(k), str(v)) for k, v in case["params_multi"]]
    return list(case.get("params", {}).items())


@pytest.mark.parametrize(
    "case", [c for c in VECTORS["cases"] if "expected_signature" in c], ids=lambda c: c["name"]
)
def test_sdk_compute_vectors(case: dict[str, Any]) -> None:
    """compute_signature reproduces the SDK's expected signatures (incl. repeated keys)."""
    assert compute_signature(TOKEN, case["url"], _pairs(case)) == case["expected_signature"]


@pytest.mark.parametrize(
    "case",
    [c for c in VECTORS["cases"] if c["method"] == "validate"]
    + VECTORS["derived_negative_cases_not_from_sdk"],
    ids=lambda c: c["name"],
)
def test_validate_vectors(case: dict[str, Any]) -> None:
    """Every validate vector (port removed/added, JSON body, wrong token, tampering) holds."""
    token = case.get("auth_token", TOKEN)
    url = case["url"]
    if "body" in case:
        body = case["body"].encode()
        check = verify_signature(
            token, url=url, signature=case["signature"], body=body, query=_query(url)
        )
        assert check.ok is case["valid"]
    else:
        assert _check(url, _pairs(case), case["signature"], token) is case["valid"]


def test_tampered_json_body_rejected() -> None:
    """A JSON body that does not match bodySHA256 is refused even with a valid URL signature."""
    case = next(c for c in VECTORS["cases"] if c["name"] == "validation_of_body_succeeds")
    check = verify_signature(
        TOKEN, url=case["url"], signature=case["signature"], body=b"{}", query=_query(case["url"])
    )
    assert not check.ok


def test_public_url_and_host_header_ports() -> None:
    """A signature over the Host header's port is accepted when the rebuilt URL has none."""
    params = [("CallSid", "CA1"), ("CallStatus", "ringing")]
    signed_url = "https://gw.example:8443/voice/webhook?callId=x"
    signature = compute_signature(TOKEN, signed_url, params)
    body = urlencode(params).encode()
    url = "https://gw.example/voice/webhook?callId=x"
    plain = verify_signature(TOKEN, url=url, signature=signature, body=body, query={})
    by_host = verify_signature(
        TOKEN, url=url, signature=signature, body=body, query={}, host_header="gw.example:8443"
    )
    assert not plain.ok and by_host.ok


def test_request_key_ignores_param_order_and_idempotency_header() -> None:
    """The replay key depends on URL, params and signature only (not order, not other headers)."""
    a = request_key("https://x/y", [("B", "2"), ("A", "1")], "sig")
    b = request_key("https://x/y", [("A", "1"), ("B", "2")], "sig")
    assert a == b and a.startswith("twilio:req:") and len(a) == len("twilio:req:") + 64


def test_missing_signature_rejected() -> None:
    """A webhook without X-Twilio-Signature is refused."""
    assert not verify_signature(TOKEN, url="https://x/", signature=None, body=b"", query={}).ok


_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    params=st.lists(
        st.tuples(st.sampled_from(["CallSid", "From", "Digits", "To", "X"]), _text), max_size=6
    ),
    port=st.sampled_from(["", ":443", ":8443"]),
)
def test_agrees_with_the_twilio_sdk(params: list[tuple[str, str]], port: str) -> None:
    """Signatures made by the official SDK validate here, and ours validate in the SDK."""
    url = f"https://gw.example{port}/voice/webhook?callId=abc"
    sdk = RequestValidator(TOKEN)
    unique = dict(params)
    sdk_sig = sdk.compute_signature(url, unique)
    assert _check(url, list(unique.items()), sdk_sig)
    ours = compute_signature(TOKEN, url, list(unique.items()))
    assert sdk.validate(url, unique, ours)
