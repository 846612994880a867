"""Fuzzing every buildable carrier's webhook through a real Gateway (SPEC §4.1-4.2)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecall.carriers import CARRIERS, load_carrier_class
from voicecall.carriers.mock.webhook import EVENT_TYPES
from voicecall.config import VoicecallConfig
from voicecall.errors import ConfigError
from voicecall.gateway import Gateway

PUBLIC_URL = "https://voice.example.com/voice/webhook"
# Discard port on loopback: a REST call that slipped through would fail here, never leave.
NOWHERE = "http://127.0.0.1:9"
TELNYX_PUBLIC_KEY = base64.b64encode(
    Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()

CREDENTIALS: dict[str, Any] = {
    "twilio": {
        "accountSid": "AC" + "0" * 32,
        "authToken": "fake-twilio-auth-token",
        "apiBaseUrl": NOWHERE,
    },
    "telnyx": {
        "apiKey": "KEYfake",
        "connectionId": "fake-connection",
        "publicKey": TELNYX_PUBLIC_KEY,
        "apiBaseUrl": NOWHERE,
    },
    "plivo": {
        "authId": "MAFAKEFAKEFAKEFAKEFA",
        "authToken": "fake-plivo-token",
        "apiBaseUrl": NOWHERE,
    },
}

# Every signature header any carrier reads (SPEC §4.1 step 4), so each carrier sees foreign ones.
SIGNATURE_HEADERS = (
    "X-Twilio-Signature",
    "I-Twilio-Idempotency-Token",
    "telnyx-signature-ed25519",
    "telnyx-timestamp",
    "X-Plivo-Signature-V3",
    "X-Plivo-Signature-V3-Nonce",
    "X-Plivo-Signature-V2",
    "X-Plivo-Signature-V2-Nonce",
)


def _buildable() -> list[str]:
    """Registered carriers whose module exists in this build (a broken one still fails loudly)."""
    names = []
    for name in CARRIERS:
        try:
            load_carrier_class(name)
        except ConfigError as exc:
            if "not available in this build" in str(exc):
                continue
        names.append(name)
    return names


def carrier_config(name: str, store: Path) -> VoicecallConfig:
    """A complete config for ``name`` with fake credentials, served on ephemeral loopback ports."""
    raw: dict[str, Any] = {
        "provider": name,
        "fromNumber": "+15550001111",
        "publicUrl": PUBLIC_URL,
        "store": str(store),
        "inboundPolicy": "open",
        "serve": {"port": 0},
        "rpc": {"port": 0},
        "webhookSecurity": {"allowPrivateWebhookUrl": True},
    }
    if name in CREDENTIALS:
        raw[name] = CREDENTIALS[name]
    return VoicecallConfig.model_validate(raw)


@dataclass
class Target:
    """A running gateway plus spies on what reached its carrier handler and its runtime."""

    name: str
    gateway: Gateway
    http: aiohttp.ClientSession
    url: str
    store: Path
    handled: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)

    def spy(self) -> None:
        carrier: Any = self.gateway._carrier
        runtime: Any = self.gateway.runtime
        handle_webhook = carrier.handle_webhook
        handle_events = runtime.handle_events

        async def spy_webhook(*args: Any, **kwargs: Any) -> Any:
            self.handled.append(args)
            return await handle_webhook(*args, **kwargs)

        async def spy_events(events: Any, *args: Any, **kwargs: Any) -> Any:
            self.events.append(events)
            return await handle_events(events, *args, **kwargs)

        carrier.handle_webhook = spy_webhook
        runtime.handle_events = spy_events

    def records(self) -> list[str]:
        path = self.store / "calls.jsonl"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(params=_buildable())
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    name: str = request.param
    gateway = Gateway(carrier_config(name, tmp_path), control=False, env={})
    await gateway.start()
    assert gateway.unavailable is None, gateway.unavailable
    # The listener's own address: with publicUrl set, webhook_url is the public one.
    assert gateway._webhook is not None
    local_url = gateway._webhook.url(gateway.config.serve.path)
    async with aiohttp.ClientSession() as http:
        target = Target(name, gateway, http, local_url, tmp_path)
        target.spy()
        try:
            yield target
        finally:
            await gateway.stop()


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=120)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | printable,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(printable, inner, max_size=4),
    max_leaves=12,
)
form_keys = st.sampled_from(
    ["CallSid", "CallStatus", "Direction", "From", "To", "SpeechResult", "Digits", "CallUUID",
     "Event", "AnsweredBy", "AccountSid", "Confidence", "RequestUUID", "callId"]
) | printable  # fmt: skip
mock_event = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(EVENT_TYPES)) | printable},
    optional={
        "callId": printable,
        "providerCallId": printable,
        "id": printable,
        "timestamp": json_values,
        "transcript": json_values,
        "isFinal": json_values,
        "reason": json_values,
        "digits": json_values,
        "direction": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=512),
    st.dictionaries(form_keys, printable, max_size=8).map(lambda d: urlencode(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda payload, event_type: json.dumps(
            {"data": {"event_type": event_type, "payload": payload}}
        ).encode(),
        st.dictionaries(printable, json_values, max_size=5),
        st.sampled_from(["call.initiated", "call.answered", "call.hangup", "x"]),
    ),
    mock_event.map(lambda e: json.dumps({"event": e}).encode()),
    st.lists(mock_event, max_size=3).map(lambda es: json.dumps({"events": es}).encode()),
)
signature_values = st.one_of(
    printable,
    st.binary(min_size=1, max_size=80).map(lambda b: base64.b64encode(b).decode()),
    st.binary(min_size=64, max_size=64).map(lambda b: base64.urlsafe_b64encode(b).decode()),
    st.integers(0, 2 * int(time.time())).map(str),
    st.lists(printable, max_size=4).map(",".join),
)
header_sets = st.dictionaries(st.sampled_from(SIGNATURE_HEADERS), signature_values, max_size=8)
content_types = st.sampled_from(
    ["application/x-www-form-urlencoded", "application/json", "text/plain", "", "multipart/x"]
)
queries = st.dictionaries(
    st.sampled_from(["callId", "flow", "type", "turnToken", "bodySHA256"]) | printable,
    printable,
    max_size=4,
).map(urlencode)


def _malformed_mock_body(body: bytes) -> bool:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return True
    return not isinstance(document, dict) or not ("event" in document or "events" in document)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, headers=header_sets, content_type=content_types, query=queries)
async def test_unsigned_webhooks_never_fail_and_never_change_state(
    target: Target, body: bytes, headers: dict[str, str], content_type: str, query: str
) -> None:
    """Random bodies, headers and signatures never get a 5xx nor change state unsigned."""
    all_headers = {**headers, "Content-Type": content_type} if content_type else dict(headers)
    url = f"{target.url}?{query}" if query else target.url
    async with target.http.post(url, data=body, headers=all_headers) as response:
        status = response.status
        await response.read()
    assert status < 500
    if target.name == "mock":
        # The mock carrier has no signatures: it must only answer malformed bodies with 400.
        if _malformed_mock_body(body):
            assert status == 400
        return
    assert status == 401
    assert target.handled == []
    assert target.events == []
    assert target.records() == []
    assert target.gateway.runtime is not None
    assert target.gateway.runtime.active_call_count == 0
