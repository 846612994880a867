"""Telnyx Ed25519 webhook signatures (SPEC §4.2-4.3): vectors, key formats, window, tampering."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from voicecall.carriers.telnyx.webhook import (
    SignatureCheck,
    load_public_key,
    request_key,
    verify_signature,
)
from voicecall.errors import ConfigError

VECTOR = json.loads((Path(__file__).parents[2] / "data" / "telnyx_ed25519.json").read_text())[
    "self_generated_vector"
]
SEED = bytes.fromhex(VECTOR["private_seed_hex"])
PUBLIC_B64: str = VECTOR["public_key_b64"]
TS: str = VECTOR["headers"]["telnyx-timestamp"]
SIGNATURE_B64: str = VECTOR["headers"]["telnyx-signature-ed25519"]
BODY: bytes = VECTOR["raw_body"].encode()


def _headers(signature: str = SIGNATURE_B64, ts: str = TS) -> dict[str, str]:
    return {"telnyx-signature-ed25519": signature, "telnyx-timestamp": ts}


def _check(
    headers: dict[str, str],
    body: bytes = BODY,
    now_s: int = 1700000000,
    key: Ed25519PublicKey | None = None,
) -> SignatureCheck:
    public_key = load_public_key(PUBLIC_B64) if key is None else key
    return verify_signature(public_key=public_key, headers=headers, body=body, now_s=now_s)


@pytest.mark.parametrize(
    ("case", "now_s", "valid"),
    [
        ("valid", 1700000000, True),
        ("valid_within_tolerance", 1700000299, True),
        ("edge_of_window", 1700000300, True),
        ("stale_timestamp", 1700000301, False),
        ("future_timestamp", 1699999699, False),
    ],
)
def test_vector_window(case: str, now_s: int, valid: bool) -> None:
    """The shared vector verifies inside the ±300 s window and is refused outside it."""
    result = _check(_headers(), now_s=now_s)
    assert result.ok is valid, case
    if not valid:
        assert result.reason == "Timestamp too old"


def test_window_is_checked_after_the_signature() -> None:
    """A forged signature on a stale request is reported as a bad signature, not as stale."""
    forged = base64.b64encode(bytes(64)).decode()
    assert _check(_headers(forged), now_s=1800000000).reason == "Invalid signature"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (_headers(), BODY.replace(b"parked", b"bridging")),
        (_headers(ts="1700000001"), BODY),
        (_headers(), json.dumps(json.loads(BODY)).encode()),
        (_headers(), BODY + b" "),
    ],
    ids=["tampered_body", "timestamp_header_changed", "body_reserialized", "trailing_space"],
)
def test_tampering_is_refused(headers: dict[str, str], body: bytes) -> None:
    """Any change to the signed bytes or the timestamp header fails verification."""
    assert not _check(headers, body, now_s=1700000001).ok


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "1700000000.5", "-1700000000", " +1700000000", "1_700_000_000"]
)
def test_non_numeric_timestamp_is_refused(timestamp: str) -> None:
    """A timestamp that is not a plain decimal number is rejected."""
    assert not _check(_headers(ts=timestamp)).ok


@pytest.mark.parametrize(
    "signature", ["", "not base64!", base64.b64encode(bytes(63)).decode(), "A" * 87]
)
def test_malformed_signature_is_refused(signature: str) -> None:
    """Signatures that are not 64 bytes of Base64 are refused without raising."""
    assert not _check(_headers(signature)).ok


def test_fails_closed_without_a_key() -> None:
    """With no public key configured, even a well-signed webhook is refused."""
    result = verify_signature(public_key=None, headers=_headers(), body=BODY, now_s=1700000000)
    assert not result.ok and result.request_key is None


def test_missing_headers_are_refused() -> None:
    """A webhook without both Telnyx headers is refused."""
    assert not _check({"telnyx-timestamp": TS}).ok
    assert not _check({"telnyx-signature-ed25519": SIGNATURE_B64}).ok


def _key_forms() -> dict[str, str]:
    public = Ed25519PrivateKey.from_private_bytes(SEED).public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    return {
        "raw-base64": base64.b64encode(raw).decode(),
        "raw-base64url": base64.urlsafe_b64encode(raw).decode(),
        "raw-base64url-unpadded": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "der-spki-base64": base64.b64encode(der).decode(),
        "pem": pem,
        "pem-with-whitespace": f"\n  {pem}  \n",
    }


@pytest.mark.parametrize("form", sorted(_key_forms()))
def test_every_public_key_format_verifies(form: str) -> None:
    """Raw Base64/Base64URL, DER SPKI and PEM forms of the key all verify the vector."""
    assert _check(_headers(), key=load_public_key(_key_forms()[form])).ok


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a key",
        base64.b64encode(bytes(31)).decode(),
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
    ],
)
def test_bad_public_keys_are_config_errors(text: str) -> None:
    """An unusable telnyx.publicKey is a ConfigError naming the key path."""
    with pytest.raises(ConfigError, match=r"telnyx\.publicKey"):
        load_public_key(text)


def test_non_ed25519_key_is_refused() -> None:
    """A PEM key of another algorithm (here EC P-256) is refused."""
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ConfigError, match="not an Ed25519 key"):
        load_public_key(pem)


def test_wrong_key_is_refused() -> None:
    """A signature by another key does not verify."""
    other = Ed25519PrivateKey.generate().public_key()
    assert _check(_headers(), key=other).reason == "Invalid signature"


def test_base64url_signature_verifies_with_the_same_request_key() -> None:
    """The Base64URL form of a signature verifies and maps to the same replay key."""
    raw = base64.b64decode(SIGNATURE_B64)
    url_form = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    standard = _check(_headers())
    url_safe = _check(_headers(url_form))
    assert standard.ok and url_safe.ok
    assert standard.request_key == url_safe.request_key


def test_request_key_follows_the_spec_formula() -> None:
    """The replay key is telnyx: + sha256 of timestamp, canonical signature and body."""
    expected = hashlib.sha256(f"{TS}\n{SIGNATURE_B64}\n".encode() + BODY).hexdigest()
    assert _check(_headers()).request_key == f"telnyx:{expected}"
    assert request_key(TS, base64.b64decode(SIGNATURE_B64), BODY) == f"telnyx:{expected}"


def test_rfc8032_primitive() -> None:
    """RFC 8032 test 1: the Ed25519 primitive underneath agrees with the standard."""
    public = load_public_key(
        base64.b64encode(
            bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        ).decode()
    )
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
        "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    public.verify(signature, b"")
