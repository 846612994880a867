"""The carrier-neutral webhook pipeline (SPEC §4.1-4.5) driven through a signed fake carrier."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from voicecall.carriers.base import (
    CallStatus,
    Carrier,
    EventSink,
    Verification,
    WebhookReply,
    WebhookRequest,
)
from voicecall.config import VoicecallConfig
from voicecall.gateway import Gateway
from voicecall.server.forwarding import ForwardingPolicy
from voicecall.server.metrics import GatewayMetrics
from voicecall.server.replay import CachedResponse, ReplayCache
from voicecall.server.webhook import (
    WEBHOOK_BODY_LIMIT_BYTES,
    WEBHOOK_BODY_TIMEOUT_S,
    WebhookState,
    build_webhook_app,
)

SECRET = b"pipeline-secret"
PUBLIC_URL = "https://voice.example.com/voice/webhook"


def sign(url: str, body: bytes) -> str:
    """The fake carrier's signature: hex HMAC-SHA256 over the URL and the body."""
    return hmac.new(SECRET, url.encode() + b"\n" + body, hashlib.sha256).hexdigest()


class SignedCarrier(Carrier):
    """A carrier with a real signature check, so the pipeline's order can be observed."""

    name = "signed"
    supports_pre_connect_dtmf = False
    webhook_signature_headers = (("x-sig",), ("x-sig-a", "x-sig-b"))

    def __init__(self) -> None:
        self.verified: list[WebhookRequest] = []
        self.handled: list[tuple[WebhookRequest, Verification]] = []
        self.replies: deque[WebhookReply] = deque()
        self.hold: asyncio.Event | None = None
        self.in_handler = 0
        self.failures = 0

    def verify_webhook(self, request: WebhookRequest) -> Verification:
        self.verified.append(request)
        signature = request.headers.get("x-sig") or request.headers.get("x-sig-a", "")
        if signature == "raise":
            raise ValueError("garbled signature")
        if signature == "nokey":
            return Verification(ok=True)
        if not hmac.compare_digest(signature, sign(request.url, request.body)):
            return Verification(ok=False, reason="signature mismatch for the test")
        return Verification(ok=True, request_key=f"signed:{signature}")

    async def handle_webhook(
        self, request: WebhookRequest, verification: Verification, control: Any
    ) -> WebhookReply:
        self.handled.append((request, verification))
        if self.hold is not None:
            self.in_handler += 1
            await self.hold.wait()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("carrier handler blew up")
        await control.handle_events([{"type": "call.ringing", "providerCallId": "p1"}])
        return self.replies.popleft() if self.replies else WebhookReply(body=b"handled")

    def set_event_sink(self, sink: EventSink) -> None:
        self.sink = sink

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def initiate_call(self, **_: Any) -> str:
        return "p1"

    async def hangup_call(self, provider_call_id: str) -> None:
        return None

    async def play_tts(self, provider_call_id: str, text: str) -> None:
        return None

    async def start_listening(self, provider_call_id: str, turn_token: str | None) -> None:
        return None

    async def stop_listening(self, provider_call_id: str) -> None:
        return None

    async def send_dtmf(self, provider_call_id: str, digits: str) -> None:
        return None

    async def get_call_status(self, provider_call_id: str) -> CallStatus:
        return CallStatus(status="in-progress", terminal=False)


class RecordingControl:
    """The runtime side: records every event the carrier feeds it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def handle_events(
        self, events: list[dict[str, Any]], *, in_band_rejection: bool = False
    ) -> None:
        self.events.extend(events)

    def call_view(self, call_id: str) -> None:
        return None

    async def claim_initial_message(self, call_id: str) -> None:
        return None

    def get_record(self, call_id: str) -> None:
        return None

    def find_by_provider_id(self, provider_call_id: str) -> None:
        return None


@dataclass
class Hook:
    carrier: SignedCarrier
    control: RecordingControl
    state: WebhookState
    client: TestClient[Any, Any]

    @property
    def address(self) -> tuple[str, int]:
        server = self.client.server
        assert server.port is not None
        return str(server.host), server.port

    def count(self, result: str) -> float:
        text = self.state.metrics.render().decode()
        line = f'voicecall_webhook_requests_total{{provider="signed",result="{result}"}} '
        for row in text.splitlines():
            if row.startswith(line):
                return float(row[len(line) :])
        return 0.0

    async def post_signed(
        self, body: bytes, *, query: str = "", headers: dict[str, str] | None = None
    ) -> Any:
        url = PUBLIC_URL + (f"?{query}" if query else "")
        path = "/voice/webhook" + (f"?{query}" if query else "")
        all_headers = {"X-Sig": sign(url, body), **(headers or {})}
        return await self.client.post(path, data=body, headers=all_headers)


MakeHook = Callable[..., Awaitable[Hook]]


@pytest.fixture
async def make_hook() -> AsyncIterator[MakeHook]:
    clients: list[TestClient[Any, Any]] = []

    async def make(**overrides: Any) -> Hook:
        carrier = SignedCarrier()
        control = RecordingControl()
        settings: dict[str, Any] = {"public_url": PUBLIC_URL, **overrides}
        state = WebhookState(carrier=carrier, control=control, metrics=GatewayMetrics(), **settings)
        client: TestClient[Any, Any] = TestClient(
            TestServer(build_webhook_app(state), host="127.0.0.1", port=0)
        )
        await client.start_server()
        clients.append(client)
        return Hook(carrier, control, state, client)

    yield make
    for client in clients:
        await client.close()


async def raw_exchange(address: tuple[str, int], head: str, body_part: bytes = b"") -> str:
    """Send a request head (and maybe part of a body, never the rest); return the status line."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body_part)
        await writer.drain()
        return (await reader.readline()).decode().strip()
    finally:
        writer.close()


# -- step 1: hold music ----------------------------------------------------------------------

HOLD_URL = "https://music.example.com/hold.mp3?a=1&b=2"
T_HOLD = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="alice">All agents are currently'
    ' busy. Please hold.</Say><Play loop="0">https://music.example.com/hold.mp3?a=1&amp;b=2'
    "</Play></Response>"
)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_hold_music_serves_t_hold(make_hook: MakeHook, method: str) -> None:
    """GET and POST /voice/hold-music answer T-HOLD with the configured, XML-escaped music URL."""
    hook = await make_hook(hold_music_url=HOLD_URL)
    response = await hook.client.request(method, "/voice/hold-music")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/xml"
    assert await response.text() == T_HOLD
    assert hook.carrier.verified == []


async def test_hold_music_under_the_public_path_prefix(make_hook: MakeHook) -> None:
    """With publicUrl under a prefix, {prefix}/voice/hold-music is served; look-alikes are not."""
    hook = await make_hook(public_url="https://voice.example.com/base/voice/webhook")
    assert (await hook.client.get("/base/voice/hold-music")).status == 200
    assert (await hook.client.get("/voice/hold-music/")).status == 200
    assert (await hook.client.get("/other/voice/hold-music")).status == 404
    assert (await hook.client.get("/voice/hold-musicx")).status == 404


# -- steps 2-3: path and method ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/voice/webhook-evil",
        "/voice/webhookx",
        "/voice",
        "/voice/webhook/extra",
        "/Voice/Webhook",
        "/rpc",
        "/healthz",
        "/metrics",
    ],
)
async def test_only_the_exact_path_is_served(make_hook: MakeHook, path: str) -> None:
    """Prefix look-alikes and other paths are 404 and never reach the carrier."""
    hook = await make_hook()
    response = await hook.client.post(path, data=b"x", headers={"X-Sig": "x"})
    assert response.status == 404
    assert hook.carrier.verified == []
    assert hook.count("not_found") == 1


async def test_percent_encoded_lookalike_is_404(make_hook: MakeHook) -> None:
    """The path is compared as sent: /voice/%77ebhook is not the webhook path."""
    hook = await make_hook()
    head = "POST /voice/%77ebhook HTTP/1.1\nHost: 127.0.0.1\nX-Sig: x\nContent-Length: 0\n"
    assert await raw_exchange(hook.address, head) == "HTTP/1.1 404 Not Found"
    assert hook.carrier.verified == []


async def test_trailing_slashes_are_ignored(make_hook: MakeHook) -> None:
    """/voice/webhook/ and /voice/webhook// are the webhook path."""
    hook = await make_hook()
    for path in ("/voice/webhook/", "/voice/webhook//"):
        response = await hook.client.post(
            path, data=b"{}", headers={"X-Sig": sign(PUBLIC_URL, b"{}")}
        )
        assert response.status != 404
    assert len(hook.carrier.verified) == 2


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
async def test_non_post_is_405_with_allow(make_hook: MakeHook, method: str) -> None:
    """Any method but POST on the webhook path is 405 with Allow: POST."""
    hook = await make_hook()
    response = await hook.client.request(method, "/voice/webhook", headers={"X-Sig": "x"})
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert hook.count("method_not_allowed") == 1


# -- step 4: the pre-auth header gate --------------------------------------------------------


async def test_missing_signature_header_is_401_without_reading_the_body(
    make_hook: MakeHook,
) -> None:
    """With no signature header the 401 comes back although the promised body never arrives."""
    # Were the body awaited, this request would end in 408 after the (short) read timeout.
    hook = await make_hook(body_timeout_s=0.5)
    head = "POST /voice/webhook HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 1000\n"
    status = await raw_exchange(hook.address, head)
    assert status == "HTTP/1.1 401 Unauthorized"
    assert hook.carrier.verified == []
    assert hook.count("unauthorized") == 1


@pytest.mark.parametrize(
    ("headers", "passes"),
    [
        ({}, False),
        ({"X-Sig": ""}, False),
        ({"X-Sig-A": "a"}, False),
        ({"X-Sig-B": "b"}, False),
        ({"X-Sig-A": "a", "X-Sig-B": "b"}, True),
        ({"X-SIG": "x"}, True),
    ],
)
async def test_header_gate_needs_one_complete_group(
    make_hook: MakeHook, headers: dict[str, str], passes: bool
) -> None:
    """A request passes the gate only with every header of one group (names case-insensitive)."""
    hook = await make_hook()
    response = await hook.client.post("/voice/webhook", data=b"{}", headers=headers)
    assert response.status == 401
    assert bool(hook.carrier.verified) is passes


async def test_skip_signature_verification_accepts_unsigned_requests(make_hook: MakeHook) -> None:
    """skipSignatureVerification skips gate and carrier check, keyed by the request's hash."""
    hook = await make_hook(skip_signature_verification=True)
    response = await hook.client.post("/voice/webhook?x=1", data=b"hello")
    assert response.status == 200
    assert hook.carrier.verified == []
    _, verification = hook.carrier.handled[0]
    digest = hashlib.sha256(f"POST\n{PUBLIC_URL}?x=1\nhello".encode()).hexdigest()
    assert verification.request_key == f"signed:skip:{digest}"
    assert (await hook.client.post("/voice/webhook?x=1", data=b"hello")).status == 200
    assert len(hook.carrier.handled) == 1
    assert (await hook.client.post("/voice/webhook?x=1", data=b"hello!")).status == 200
    assert len(hook.carrier.handled) == 2


# -- step 5: the per-peer in-flight cap -------------------------------------------------------


async def test_ninth_concurrent_request_from_one_peer_is_429(make_hook: MakeHook) -> None:
    """Eight requests in flight from one peer are processed; the ninth gets 429 meanwhile."""
    hook = await make_hook()
    hook.carrier.hold = asyncio.Event()
    held = [asyncio.create_task(hook.post_signed(f"body {i}".encode())) for i in range(8)]
    async with asyncio.timeout(30):
        while hook.carrier.in_handler < 8:
            await asyncio.sleep(0.01)
    assert (await hook.post_signed(b"ninth")).status == 429
    assert hook.count("too_many_requests") == 1
    hook.carrier.hold.set()
    assert [(await task).status for task in held] == [200] * 8
    assert (await hook.post_signed(b"after")).status == 200
    assert len(hook.carrier.handled) == 9
    assert hook.state.in_flight == {}


# -- step 6: body cap and read timeout --------------------------------------------------------


async def test_body_over_the_cap_is_413_before_verification(make_hook: MakeHook) -> None:
    """A body over 65,536 bytes is 413 (declared or streamed) and never verified."""
    hook = await make_hook()
    too_big = b"x" * (WEBHOOK_BODY_LIMIT_BYTES + 1)
    response = await hook.client.post("/voice/webhook", data=too_big, headers={"X-Sig": "x"})
    assert response.status == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(WEBHOOK_BODY_LIMIT_BYTES // 4096 + 1):
            yield b"y" * 4096

    streamed = await hook.client.post("/voice/webhook", data=chunks(), headers={"X-Sig": "x"})
    assert streamed.status == 413
    assert hook.carrier.verified == []
    assert hook.count("payload_too_large") == 2


async def test_body_at_the_cap_is_accepted(make_hook: MakeHook) -> None:
    """A body of exactly 65,536 bytes is read whole and handed to the carrier."""
    hook = await make_hook()
    body = b"z" * WEBHOOK_BODY_LIMIT_BYTES
    assert (await hook.post_signed(body)).status == 200
    assert hook.carrier.handled[0][0].body == body


async def test_slow_body_is_408_before_verification(make_hook: MakeHook) -> None:
    """A body that stops arriving is refused with 408 and never verified."""
    hook = await make_hook(body_timeout_s=0.3)
    head = "POST /voice/webhook HTTP/1.1\nHost: 127.0.0.1\nX-Sig: abc\nContent-Length: 20\n"
    status = await raw_exchange(hook.address, head, b"first")
    assert status == "HTTP/1.1 408 Request Timeout"
    assert hook.carrier.verified == []
    assert hook.count("timeout") == 1


def test_defaults_follow_the_spec() -> None:
    """The body cap is 65,536 bytes, the read deadline 5 s and signatures are on by default."""
    config = VoicecallConfig()
    state = WebhookState.from_config(
        config, carrier=SignedCarrier(), control=RecordingControl(), metrics=GatewayMetrics()
    )
    assert (WEBHOOK_BODY_LIMIT_BYTES, WEBHOOK_BODY_TIMEOUT_S) == (65_536, 5.0)
    assert state.body_timeout_s == 5.0
    assert not state.skip_signature_verification
    assert state.path == "/voice/webhook"


# -- WebhookRequest construction ---------------------------------------------------------------


async def test_request_carries_public_url_raw_query_and_lowercased_headers(
    make_hook: MakeHook,
) -> None:
    """The carrier sees publicUrl + raw query, lower-cased headers, Host, first query values."""
    public = "https://voice.example.com:8443/base/voice/webhook"
    hook = await make_hook(public_url=public, clock_ms=lambda: 1_234)
    signed = f"{public}?b=2&a=1&a=3&c=%20x"
    response = await hook.client.post(
        "/voice/webhook/?b=2&a=1&a=3&c=%20x",
        data=b"payload",
        headers={"X-Sig": sign(signed, b"payload"), "X-Custom-Thing": "Value"},
    )
    assert response.status == 200
    request, _ = hook.carrier.handled[0]
    host, port = hook.address
    assert request.url == signed
    assert request.method == "POST"
    assert request.body == b"payload"
    assert request.headers["x-custom-thing"] == "Value"
    assert all(name == name.lower() for name in request.headers)
    assert dict(request.query) == {"b": "2", "a": "1", "c": " x"}
    assert request.host_header == f"{host}:{port}"
    assert request.public_url == public
    assert request.received_at_ms == 1_234


@pytest.mark.parametrize(
    ("policy", "expected_origin"),
    [
        (ForwardingPolicy(), "https://127.0.0.1:{port}"),
        (ForwardingPolicy.build(trust_forwarding_headers=True), "http://voice.example.com"),
        (ForwardingPolicy.build(allowed_hosts=["other.example.com"]), "https://127.0.0.1:{port}"),
        (ForwardingPolicy.build(allowed_hosts=["voice.example.com"]), "http://voice.example.com"),
    ],
)
async def test_request_url_is_reconstructed_without_public_url(
    make_hook: MakeHook, policy: ForwardingPolicy, expected_origin: str
) -> None:
    """Without publicUrl the signed URL follows the forwarding trust rules of §4.5."""
    hook = await make_hook(public_url=None, forwarding=policy)
    _, port = hook.address
    url = expected_origin.format(port=port) + "/voice/webhook?x=1"
    response = await hook.client.post(
        "/voice/webhook?x=1",
        data=b"b",
        headers={
            "X-Sig": sign(url, b"b"),
            "X-Forwarded-Host": "voice.example.com",
            "X-Forwarded-Proto": "http",
        },
    )
    assert response.status == 200
    assert hook.carrier.handled[0][0].url == url


async def test_unusable_host_without_public_url_is_400(make_hook: MakeHook) -> None:
    """A Host header with userinfo cannot rebuild the signed URL: 400, never verified."""
    hook = await make_hook(public_url=None)
    head = "POST /voice/webhook HTTP/1.1\nHost: a@evil.com\nX-Sig: abc\nContent-Length: 2\n"
    assert await raw_exchange(hook.address, head, b"{}") == "HTTP/1.1 400 Bad Request"
    assert hook.carrier.verified == []


# -- step 7: verification ----------------------------------------------------------------------


@pytest.mark.parametrize("signature", ["0" * 64, "raise", "nokey"])
async def test_failed_verification_is_401_and_the_reason_stays_in_the_log(
    make_hook: MakeHook, signature: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad signature, a verifier error or a missing request key is a bare 401."""
    hook = await make_hook()
    with caplog.at_level(logging.WARNING, logger="voicecall.server.webhook"):
        response = await hook.client.post(
            "/voice/webhook", data=b"{}", headers={"X-Sig": signature}
        )
    assert response.status == 401
    assert await response.text() == "Unauthorized"
    assert hook.carrier.handled == []
    assert hook.control.events == []
    assert hook.count("unauthorized") == 1
    assert any("signature rejected" in message for message in caplog.messages)


# -- steps 8-10: replay, processing, errors ----------------------------------------------------


async def test_replay_returns_the_first_cached_response(make_hook: MakeHook) -> None:
    """A replayed request gets the first response verbatim and the carrier runs once."""
    hook = await make_hook()
    hook.carrier.replies.extend(
        [WebhookReply(status=201, body=b"<first/>", content_type="text/xml"), WebhookReply()]
    )
    first = await hook.post_signed(b"event", query="callId=c1")
    again = await hook.post_signed(b"event", query="callId=c1")
    for response in (first, again):
        assert response.status == 201
        assert response.headers["Content-Type"] == "text/xml"
        assert await response.read() == b"<first/>"
    assert len(hook.carrier.handled) == 1
    assert len(hook.control.events) == 1
    assert (hook.count("ok"), hook.count("replay")) == (1, 1)


async def test_replay_while_the_first_is_in_flight_is_ok(make_hook: MakeHook) -> None:
    """A duplicate arriving while the first delivery is processed gets 200 OK, no second run."""
    hook = await make_hook()
    hook.carrier.hold = asyncio.Event()
    first = asyncio.create_task(hook.post_signed(b"event"))
    async with asyncio.timeout(30):
        while hook.carrier.in_handler < 1:
            await asyncio.sleep(0.01)
    duplicate = await hook.post_signed(b"event")
    assert duplicate.status == 200
    assert await duplicate.text() == "OK"
    hook.carrier.hold.set()
    assert (await first).status == 200
    assert len(hook.carrier.handled) == 1


async def test_a_carrier_can_fix_what_replays_answer(make_hook: MakeHook) -> None:
    """With webhook_replay_reply set (Twilio's empty TwiML), every replay gets exactly that."""
    hook = await make_hook()
    empty = WebhookReply(body=b"<Response></Response>", content_type="text/xml")
    hook.carrier.webhook_replay_reply = empty  # type: ignore[attr-defined]
    hook.carrier.replies.append(WebhookReply(body=b"<Response><Say>hi</Say></Response>"))
    await hook.post_signed(b"event")
    again = await hook.post_signed(b"event")
    assert again.status == 200
    assert await again.read() == b"<Response></Response>"
    assert again.headers["Content-Type"] == "text/xml"
    assert len(hook.carrier.handled) == 1


async def test_replay_window_is_ten_minutes(make_hook: MakeHook) -> None:
    """A duplicate within 10 minutes is a replay; after the window it is processed again."""
    now = [0]
    hook = await make_hook(replay_clock_ms=lambda: now[0])
    await hook.post_signed(b"event")
    now[0] = 10 * 60 * 1000
    await hook.post_signed(b"event")
    assert len(hook.carrier.handled) == 1
    now[0] += 1
    await hook.post_signed(b"event")
    assert len(hook.carrier.handled) == 2


async def test_handler_exception_is_500_and_a_retry_is_processed(make_hook: MakeHook) -> None:
    """A carrier failure answers 500 and releases the replay key, so the retry runs normally."""
    hook = await make_hook()
    hook.carrier.failures = 1
    failed = await hook.post_signed(b"event")
    assert failed.status == 500
    assert hook.count("error") == 1
    retry = await hook.post_signed(b"event")
    assert retry.status == 200
    assert await retry.read() == b"handled"
    assert len(hook.carrier.handled) == 2
    assert len(hook.control.events) == 1


async def test_replayable_reply_releases_the_key(make_hook: MakeHook) -> None:
    """A reply marked replayable is not cached: the same request is processed again."""
    hook = await make_hook()
    hook.carrier.replies.append(WebhookReply(body=b"again later", replayable=True))
    await hook.post_signed(b"event")
    second = await hook.post_signed(b"event")
    assert await second.read() == b"handled"
    assert len(hook.carrier.handled) == 2


async def test_carrier_reply_is_returned_as_given(make_hook: MakeHook) -> None:
    """Status, body, content type (with charset) and headers of the reply reach the carrier."""
    hook = await make_hook()
    hook.carrier.replies.extend(
        [
            WebhookReply(body=b""),
            WebhookReply(
                status=202,
                body=b"<Response/>",
                content_type="application/xml; charset=utf-8",
                headers={"X-Extra": "1"},
            ),
        ]
    )
    empty = await hook.post_signed(b"one")
    assert (empty.status, await empty.read()) == (200, b"")
    custom = await hook.post_signed(b"two")
    assert custom.status == 202
    assert custom.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert custom.headers["X-Extra"] == "1"
    assert await custom.read() == b"<Response/>"


# -- the replay cache itself -------------------------------------------------------------------


def test_replay_cache_holds_at_most_ten_thousand_keys() -> None:
    """Past 10,000 keys the oldest are forgotten (and would be processed again)."""
    cache = ReplayCache(clock_ms=lambda: 0)
    for i in range(10_050):
        assert cache.reserve(f"k{i}") == (True, None)
    assert len(cache) <= 10_000
    assert cache.reserve("k0")[0] is True
    assert cache.reserve("k10049")[0] is False


def test_replay_cache_prunes_expired_keys_every_64_inserts() -> None:
    """Expired keys are dropped at the next 64th insert, keeping memory bounded."""
    now = [0]
    cache = ReplayCache(clock_ms=lambda: now[0])
    for i in range(10):
        cache.reserve(f"old{i}")
    now[0] = 10 * 60 * 1000 + 1
    for i in range(53):
        cache.reserve(f"new{i}")
    assert len(cache) == 63
    cache.reserve("new53")
    assert len(cache) == 54


def test_replay_cache_keeps_the_first_response() -> None:
    """complete() stores the response that later replays answer with."""
    cache = ReplayCache(clock_ms=lambda: 0)
    cache.reserve("k")
    cache.complete("k", CachedResponse(200, b"<x/>", "text/xml"))
    assert cache.reserve("k") == (False, CachedResponse(200, b"<x/>", "text/xml"))
    cache.release("k")
    assert cache.reserve("k") == (True, None)


# -- gateway wiring ----------------------------------------------------------------------------


async def test_gateway_warns_on_every_start_when_signatures_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each start with skipSignatureVerification logs the SECURITY WARNING; without it, none."""
    warning = "SECURITY WARNING: webhook signature verification is disabled"
    base: dict[str, Any] = {"store": str(tmp_path), "serve": {"port": 0}, "rpc": {"port": 0}}
    with caplog.at_level(logging.WARNING, logger="voicecall.gateway"):
        quiet = Gateway(VoicecallConfig.model_validate(base), control=False, env={})
        await quiet.start()
        await quiet.stop()
        assert warning not in caplog.messages
        config = VoicecallConfig.model_validate({**base, "skipSignatureVerification": True})
        loud = Gateway(config, control=False, env={})
        for _ in range(2):
            await loud.start()
            await loud.stop()
    assert caplog.messages.count(warning) == 2


async def test_gateway_serves_the_mock_carrier_through_the_pipeline(tmp_path: Path) -> None:
    """A real Gateway hands a mock webhook to its runtime and replays a duplicate."""
    raw = {"store": str(tmp_path), "serve": {"port": 0}, "rpc": {"port": 0}}
    gateway = Gateway(VoicecallConfig.model_validate(raw), control=False, env={})
    await gateway.start()
    try:
        assert gateway._webhook is not None
        url = gateway._webhook.url(gateway.config.serve.path)
        body = b'{"event": {"type": "call.ringing", "callId": "nobody", "id": "e1"}}'
        import aiohttp

        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.post(url, data=body) as response:
                    assert response.status == 200
            async with http.post(url, data=b"{not json") as response:
                assert response.status == 400
        text = gateway.metrics.render().decode()
        assert 'voicecall_webhook_requests_total{provider="mock",result="replay"} 1.0' in text
    finally:
        await gateway.stop()
